//! The project's own documents (`openapi.yaml` and `asyncapi.yaml` at the workspace root) and
//! what they declare, for the tests that run the generator on them (`project_spec`,
//! `asyncapi`).

use petstore_codegen::{Specs, load};

/// `openapi.yaml`, as the build scripts read it.
pub const OPENAPI: &str = include_str!("../../../../openapi.yaml");

/// `asyncapi.yaml`, as the build scripts read it.
pub const ASYNCAPI: &str = include_str!("../../../../asyncapi.yaml");

/// The operationIds of `openapi.yaml`, in spec order (Petstore v3 plus `getPetImage` and the
/// token endpoints).
pub const OPERATION_IDS: [&str; 23] = [
    "updatePet",
    "addPet",
    "findPetsByStatus",
    "findPetsByTags",
    "getPetById",
    "updatePetWithForm",
    "deletePet",
    "uploadFile",
    "getPetImage",
    "getInventory",
    "placeOrder",
    "getOrderById",
    "updateOrder",
    "deleteOrder",
    "createUser",
    "createUsersWithListInput",
    "loginUser",
    "logoutUser",
    "getUserByName",
    "updateUser",
    "deleteUser",
    "createToken",
    "refreshToken",
];

/// Both documents of the project, parsed and checked against each other as the build scripts
/// do it.
pub fn specs() -> Specs {
    load_or_panic(OPENAPI, ASYNCAPI)
}

/// [`load`] of two documents that must be accepted.
pub fn load_or_panic(openapi: &str, asyncapi: &str) -> Specs {
    match load(openapi, asyncapi) {
        Ok(specs) => specs,
        Err(failure) => panic!("{} is rejected:\n{}", failure.document, failure.error),
    }
}
