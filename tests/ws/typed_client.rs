//! The typed client against a real server: every operation of `openapi.yaml` and every control
//! action through its typed method, the answer read into the documented type, and refusals
//! returned as the error payload with the code, status and field errors REST would answer.

use bytes::Bytes;
use petstore_api::{
    Topic,
    models::{
        Order, OrderStatus, Pet, PetStatus, RefreshRequest, Tag, TokenRequest, TokenResponse, User,
    },
    operations::*,
};
use petstore_client::{ErrorDetails, WsClient};
use petstore_testkit::{app::*, ws::*};
use petstore_ws::config::Secret;

/// The administrator of the test server.
const ADMIN_USER: &str = "typed-admin";
const ADMIN_PASSWORD: &str = "typed-admin-password";

/// A server with the administrator [`ADMIN_USER`].
async fn spawn_typed_app() -> TestApp {
    spawn_app(|config| {
        config.admin_user = Some(ADMIN_USER.to_owned());
        config.admin_password = Some(match ADMIN_PASSWORD.parse::<Secret>() {
            Ok(secret) => secret,
            Err(never) => match never {},
        });
    })
    .await
}

/// A pet called `name`, without an id.
fn pet(name: &str, status: PetStatus) -> Pet {
    Pet {
        id: None,
        name: name.to_owned(),
        category: None,
        photo_urls: vec!["https://img.example/pet.png".to_owned()],
        tags: Some(vec![Tag {
            id: None,
            name: Some("typed".to_owned()),
        }]),
        status: Some(status),
    }
}

/// A user called `username` with a password.
fn user(username: &str) -> User {
    User {
        id: None,
        username: username.to_owned(),
        first_name: Some("Typed".to_owned()),
        last_name: Some("Client".to_owned()),
        email: Some(format!("{username}@example.com")),
        password: Some("correct-horse-battery".to_owned()),
        phone: None,
        user_status: Some(1),
    }
}

/// The `id` the server gave an entity.
fn id<T: std::fmt::Debug>(id: Option<i64>, of: &T) -> i64 {
    match id {
        Some(id) => id,
        None => panic!("no id in {of:?}"),
    }
}

/// Tokens of the administrator, through the typed `createToken`.
async fn admin_tokens(client: &WsClient) -> TokenResponse {
    let credentials = TokenRequest {
        username: ADMIN_USER.to_owned(),
        password: ADMIN_PASSWORD.to_owned(),
    };
    answered(client.create_token(CreateTokenRequest { body: credentials })).await
}

#[tokio::test]
async fn every_pet_and_store_operation_answers_its_documented_type() {
    let app = spawn_typed_app().await;
    let client = app.ws_connect().await;
    let tokens = admin_tokens(&client).await;
    assert_eq!(tokens.token_type, "Bearer");
    let session = answered(client.authenticate(&tokens.access_token)).await;
    assert_eq!(session.subject, ADMIN_USER);
    assert!(
        session.roles.iter().any(|role| role == "admin"),
        "{session:?}"
    );

    // Pets.
    let added = answered(client.add_pet(AddPetRequest {
        body: pet("Rex", PetStatus::Available),
    }))
    .await;
    let pet_id = id(added.id, &added);
    assert_eq!(added.name, "Rex");
    let fetched = answered(client.get_pet_by_id(GetPetByIdRequest { pet_id })).await;
    assert_eq!(fetched, added);
    let mut sold = fetched.clone();
    sold.status = Some(PetStatus::Sold);
    let updated = answered(client.update_pet(UpdatePetRequest { body: sold })).await;
    assert_eq!(updated.status, Some(PetStatus::Sold));
    let renamed = answered(client.update_pet_with_form(UpdatePetWithFormRequest {
        pet_id,
        name: Some("Rexie".to_owned()),
        status: Some(PetStatus::Available),
    }))
    .await;
    assert_eq!(
        (renamed.name.as_str(), renamed.status),
        ("Rexie", Some(PetStatus::Available))
    );
    let available = answered(client.find_pets_by_status(FindPetsByStatusRequest {
        status: vec![PetStatus::Available],
    }))
    .await;
    assert_eq!(available, std::slice::from_ref(&renamed));
    let tagged = answered(client.find_pets_by_tags(FindPetsByTagsRequest {
        tags: vec!["typed".to_owned()],
    }))
    .await;
    assert_eq!(tagged, [renamed]);

    // Images: uploaded as bytes, served back as an image payload.
    let stored = answered(client.upload_file(UploadFileRequest {
        pet_id,
        additional_metadata: Some("front".to_owned()),
        body: Bytes::from_static(PNG),
    }))
    .await;
    let Some(image_id) = stored
        .message
        .as_deref()
        .and_then(|url| url.rsplit('/').next())
        .and_then(|id| id.parse().ok())
    else {
        panic!("no image URL in {stored:?}");
    };
    let image = answered(client.get_pet_image(GetPetImageRequest { pet_id, image_id })).await;
    assert_eq!(image.content_type, "image/png");
    assert_eq!(&image.data[..], PNG);

    // The store.
    let inventory = answered(client.get_inventory(GetInventoryRequest {})).await;
    assert_eq!(inventory.get("available"), Some(&1), "{inventory:?}");
    let placed = answered(client.place_order(PlaceOrderRequest {
        body: Order {
            id: None,
            pet_id,
            quantity: Some(1),
            ship_date: None,
            status: None,
            complete: None,
        },
    }))
    .await;
    let order_id = id(placed.id, &placed);
    assert_eq!(placed.status, Some(OrderStatus::Placed));
    let fetched = answered(client.get_order_by_id(GetOrderByIdRequest { order_id })).await;
    assert_eq!(fetched, placed);
    let mut approved = fetched;
    approved.status = Some(OrderStatus::Approved);
    let approved = answered(client.update_order(UpdateOrderRequest {
        order_id,
        body: approved,
    }))
    .await;
    assert_eq!(approved.status, Some(OrderStatus::Approved));
    let () = answered(client.delete_order(DeleteOrderRequest { order_id })).await;
    let () = answered(client.delete_pet(DeletePetRequest { pet_id })).await;
    let gone = refused(
        client.get_pet_by_id(GetPetByIdRequest { pet_id }),
        "NOT_FOUND",
        404,
    )
    .await;
    assert_eq!(gone.details, ErrorDetails::None);
    client.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn every_user_and_token_operation_answers_its_documented_type() {
    let app = spawn_typed_app().await;
    let client = app.ws_connect().await;
    let tokens = admin_tokens(&client).await;
    answered(client.authenticate(&tokens.access_token)).await;

    let created = answered(client.create_user(CreateUserRequest { body: user("ada") })).await;
    assert_eq!(created.username, "ada");
    assert!(created.password.is_none(), "{created:?}");
    let last = answered(
        client.create_users_with_list_input(CreateUsersWithListInputRequest {
            body: vec![user("bea"), user("cyd")],
        }),
    )
    .await;
    assert_eq!(last.username, "cyd");
    let fetched = answered(client.get_user_by_name(GetUserByNameRequest {
        username: "bea".to_owned(),
    }))
    .await;
    assert_eq!(fetched.email.as_deref(), Some("bea@example.com"));
    let mut phoned = user("bea");
    phoned.phone = Some("555-0199".to_owned());
    let () = answered(client.update_user(UpdateUserRequest {
        username: "bea".to_owned(),
        body: phoned,
    }))
    .await;
    let fetched = answered(client.get_user_by_name(GetUserByNameRequest {
        username: "bea".to_owned(),
    }))
    .await;
    assert_eq!(fetched.phone.as_deref(), Some("555-0199"));
    let () = answered(client.delete_user(DeleteUserRequest {
        username: "cyd".to_owned(),
    }))
    .await;

    // A customer's own session: log in, refresh (the operation and the control action), ping,
    // follow a topic, log out.
    let customer = app.ws_connect().await;
    let token = answered(customer.login_user(LoginUserRequest {
        username: "ada".to_owned(),
        password: "correct-horse-battery".to_owned(),
    }))
    .await;
    assert!(!token.is_empty());
    let ada_tokens = answered(customer.create_token(CreateTokenRequest {
        body: TokenRequest {
            username: "ada".to_owned(),
            password: "correct-horse-battery".to_owned(),
        },
    }))
    .await;
    let rotated = answered(customer.refresh_token(RefreshTokenRequest {
        body: RefreshRequest {
            refresh_token: ada_tokens.refresh_token.clone(),
        },
    }))
    .await;
    assert_ne!(rotated.refresh_token, ada_tokens.refresh_token);
    let session = answered(customer.authenticate(&rotated.access_token)).await;
    assert_eq!(
        (session.subject.as_str(), session.roles.as_slice()),
        ("ada", ["customer".to_owned()].as_slice())
    );
    let again = answered(customer.refresh(&rotated.refresh_token)).await;
    assert_ne!(again.access_token, rotated.access_token);
    let pong = answered(customer.ping()).await;
    assert!(pong.timestamp > 0, "{pong:?}");
    assert_eq!(
        answered(customer.subscribe(&[Topic::Pets])).await,
        [Topic::Pets]
    );
    assert_eq!(customer.topics(), [Topic::Pets]);
    assert_eq!(answered(customer.unsubscribe(&[Topic::Pets])).await, []);
    let () = answered(customer.logout_user(LogoutUserRequest {})).await;
    customer.close().await;
    client.close().await;
    app.shutdown().await;
}

#[tokio::test]
async fn typed_refusals_carry_the_code_status_and_field_errors() {
    let app = spawn_typed_app().await;
    let client = app.ws_connect().await;

    // Anonymous: a secured operation is refused as REST refuses it.
    refused(
        client.add_pet(AddPetRequest {
            body: pet("Rex", PetStatus::Available),
        }),
        "UNAUTHORIZED",
        401,
    )
    .await;

    let tokens = admin_tokens(&client).await;
    answered(client.authenticate(&tokens.access_token)).await;
    // A pet the schema refuses: every broken field is reported with its path.
    let mut nameless = pet("", PetStatus::Available);
    nameless.photo_urls = vec!["x".repeat(3000)];
    let invalid = refused(
        client.add_pet(AddPetRequest { body: nameless }),
        "VALIDATION_ERROR",
        422,
    )
    .await;
    let paths: Vec<&str> = invalid
        .details
        .fields()
        .iter()
        .map(|field| field.path.as_str())
        .collect();
    assert!(paths.contains(&"name"), "{invalid:?}");
    assert!(
        paths.iter().any(|path| path.starts_with("photoUrls")),
        "{invalid:?}"
    );
    // An order that does not exist.
    refused(
        client.get_order_by_id(GetOrderByIdRequest { order_id: 999 }),
        "NOT_FOUND",
        404,
    )
    .await;
    // A wrong password.
    refused(
        client.login_user(LoginUserRequest {
            username: ADMIN_USER.to_owned(),
            password: "wrong".to_owned(),
        }),
        "BAD_REQUEST",
        400,
    )
    .await;
    // The session still works.
    answered(client.ping()).await;
    client.close().await;
    app.shutdown().await;
}
