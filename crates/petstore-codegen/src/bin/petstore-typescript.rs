//! Rewrites the TypeScript client's generated file (`clients/typescript/src/generated.ts`) from
//! the repository's `openapi.yaml` and `asyncapi.yaml`. The file is committed so the npm package
//! builds without Rust; a test fails when it differs from what this writes.

use std::{fs, path::Path, process::ExitCode};

use petstore_codegen::emit::typescript::GENERATED_PATH;

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let read = |name: &str| fs::read_to_string(root.join(name));
    let (openapi, asyncapi) = match (read("openapi.yaml"), read("asyncapi.yaml")) {
        (Ok(openapi), Ok(asyncapi)) => (openapi, asyncapi),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("cannot read the documents: {error}");
            return ExitCode::FAILURE;
        }
    };
    match petstore_codegen::typescript(&openapi, &asyncapi) {
        Ok(text) => match fs::write(root.join(GENERATED_PATH), text) {
            Ok(()) => {
                println!("wrote {GENERATED_PATH}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("cannot write {GENERATED_PATH}: {error}");
                ExitCode::FAILURE
            }
        },
        Err(failure) => {
            eprintln!("{}: {}", failure.document, failure.error);
            ExitCode::FAILURE
        }
    }
}
