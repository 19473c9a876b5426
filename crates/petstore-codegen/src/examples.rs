//! The project's documentation rule: every example a documentation UI needs is in the spec.
//!
//! Swagger UI (and every tool that follows it) builds "Try it out" requests from the spec's
//! examples and makes up `"string"` or `0` where there is none, which the server may refuse. So
//! the documents the project builds from must give an example for every parameter and for every
//! scalar property a request body can hold; the tests then send those examples to the server.
//! The check runs on the way to generated code ([`crate::load`]), not in [`crate::parse`], so
//! the generator itself still reads documents without examples.

use std::collections::BTreeSet;

use crate::{
    error::{GenError, GenErrors, pointer},
    ir::{Api, Body, BodyContent, Kind, Model, Operation, Schema},
};

/// Every missing example, with its location.
///
/// # Errors
/// One error per parameter or request-body property without an example.
pub fn check(api: &Api) -> Result<(), GenErrors> {
    let mut errors = missing_parameter_examples(&api.operations);
    errors.extend(missing_body_examples(&api.models, &api.operations));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(GenErrors(errors))
    }
}

/// A parameter without an example (its own or its schema's) is reported at its operation, by
/// name: documentation UIs would fill in a value the server may refuse.
fn missing_parameter_examples(operations: &[Operation]) -> Vec<GenError> {
    operations
        .iter()
        .flat_map(|operation| {
            let at = pointer(
                &pointer("#/paths", &operation.path),
                operation.method.as_str(),
            );
            operation
                .params
                .iter()
                .chain(&operation.edge_params)
                .filter(|param| param.example.is_none())
                .map(move |param| {
                    GenError::new(
                        at.clone(),
                        format!(
                            "parameter `{}` needs an `example` (documentation UIs fill it into \
                             their requests; it must be one the server accepts)",
                            param.name
                        ),
                    )
                })
        })
        .collect()
}

/// Every scalar property a request body can hold needs an `example`: documentation UIs build
/// their "Try it out" body from the examples (and make up `"string"` or `0` where there is none,
/// which the server may refuse), so the spec's own examples must spell out a body the server
/// accepts. Enums (their first value), booleans and nested models (their own properties) need
/// none.
fn missing_body_examples(models: &[Model], operations: &[Operation]) -> Vec<GenError> {
    fn visit<'m>(schema: &Schema, models: &'m [Model], seen: &mut BTreeSet<&'m str>) {
        match &schema.kind {
            Kind::Named(name) => {
                if let Some(model) = models.iter().find(|model| model.name() == name.as_str())
                    && seen.insert(model.name())
                    && let Model::Object(object) = model
                {
                    for field in &object.fields {
                        visit(&field.schema, models, seen);
                    }
                }
            }
            Kind::Array(item) | Kind::Map(item) => visit(item, models, seen),
            _ => {}
        }
    }
    let mut reachable = BTreeSet::new();
    for operation in operations {
        if let Some(Body {
            content: BodyContent::Json(schema),
            ..
        }) = &operation.body
        {
            visit(schema, models, &mut reachable);
        }
    }
    let needs_example = |schema: &Schema| -> bool {
        let scalar =
            |kind: &Kind| matches!(kind, Kind::Integer(_) | Kind::Number | Kind::String(_));
        schema.example.is_none()
            && match &schema.kind {
                Kind::Array(item) => scalar(&item.kind) && item.example.is_none(),
                kind => scalar(kind),
            }
    };
    let mut errors = Vec::new();
    for model in models {
        let Model::Object(object) = model else {
            continue;
        };
        if !reachable.contains(object.name.as_str()) {
            continue;
        }
        for field in object.fields.iter().filter(|field| !field.read_only) {
            if needs_example(&field.schema) {
                errors.push(GenError::new(
                    pointer(
                        &pointer(&pointer("#/components/schemas", &object.name), "properties"),
                        &field.name,
                    ),
                    "a property a request body can hold needs an `example` (documentation UIs \
                     build their requests from the examples; together they must make a body the \
                     server accepts)",
                ));
            }
        }
    }
    errors
}
