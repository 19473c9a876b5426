//! The TypeScript client's committed `generated.ts` is what the generator emits from the
//! project's documents today: a spec change without regenerating it fails here.

#[allow(dead_code)]
// the shared module serves several test crates; this one reads only the documents
mod project;

use petstore_codegen::emit::typescript::{GENERATED_PATH, REGENERATE};
use project::{ASYNCAPI, OPENAPI, OPERATION_IDS};

const COMMITTED: &str = include_str!("../../../clients/typescript/src/generated.ts");

fn emitted() -> String {
    match petstore_codegen::typescript(OPENAPI, ASYNCAPI) {
        Ok(text) => text,
        Err(failure) => panic!("{}: {}", failure.document, failure.error),
    }
}

#[test]
fn committed_typescript_matches_the_generator() {
    let emitted = emitted();
    if emitted != COMMITTED {
        let first_difference = emitted
            .lines()
            .zip(COMMITTED.lines())
            .position(|(new, old)| new != old)
            .map_or_else(
                || "one is a prefix of the other".to_owned(),
                |index| format!("first difference at line {}", index + 1),
            );
        panic!(
            "{GENERATED_PATH} is out of date with openapi.yaml / asyncapi.yaml \
             ({first_difference}); regenerate it with `{REGENERATE}` and commit it"
        );
    }
}

#[test]
fn every_operation_is_an_action_with_payload_and_result() {
    let text = emitted();
    for id in OPERATION_IDS {
        assert!(
            text.contains(&format!("\n  {id}: {{\n    payload: ")),
            "{id} is missing from ActionMap"
        );
        assert!(
            text.contains(&format!("\n  \"{id}\",\n")),
            "{id} is missing from OPERATIONS"
        );
    }
    for control in [
        "authenticate",
        "refresh",
        "subscribe",
        "unsubscribe",
        "ping",
    ] {
        assert!(text.contains(&format!("\n  {control}: {{\n")), "{control}");
    }
    assert!(
        text.contains(
            "  subscribe: {\n    payload: SubscribePayload;\n    result: SubscribedPayload;\n  };"
        ),
        "subscribe's types"
    );
}
