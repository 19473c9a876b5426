//! From the parsed OpenAPI document to the intermediate model.
//!
//! Everything the emitters rely on is checked here, once, with the spec location in the error:
//! unsupported constructs are rejected rather than half-generated.

use std::collections::{BTreeSet, HashMap, HashSet};

use indexmap::IndexMap;
use openapiv3::{
    APIKeyLocation, AdditionalProperties, Components, IntegerFormat, MediaType, OpenAPI, Parameter,
    ParameterSchemaOrContent, ReferenceOr, RequestBody, SchemaKind, SecurityRequirement,
    SecurityScheme, StatusCode, StringFormat as OasStringFormat, Type, VariantOrUnknownOrEmpty,
};

use crate::{
    error::{GenError, GenErrors, pointer},
    ir::{
        Api, Body, BodyContent, Bound, Constraints, EnumModel, Field, Header, IntFormat, Kind,
        Method, Model, ObjectModel, Operation, Param, ParamLocation, Requirement, Response,
        ResponseContent, Schema, SchemeKind, SecuritySchemeInfo, Status, StringFormat, TagInfo,
        requires_credentials,
    },
    names,
};

/// The component schema every error response must use.
pub const ERROR_SCHEMA: &str = "ErrorResponse";

const SCHEMA_PREFIX: &str = "#/components/schemas/";

/// Constants `operations.rs` declares next to one per security scheme.
const RESERVED_CONSTS: [&str; 2] = ["OPERATIONS", "SECURITY_SCHEMES"];

/// Parses YAML (or JSON) text into the intermediate model.
pub fn parse_spec(text: &str) -> Result<Api, GenErrors> {
    parse_document(text).map(|(_, api)| api)
}

/// Parses YAML (or JSON) text once: the document as JSON (what `$ref`s into it from
/// `asyncapi.yaml` are resolved against) and its intermediate model.
pub fn parse_document(text: &str) -> Result<(serde_json::Value, Api), GenErrors> {
    let invalid = |error: String| {
        GenErrors(vec![GenError::new(
            "#",
            format!("not a valid OpenAPI 3.0 document: {error}"),
        )])
    };
    let value: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|error| invalid(error.to_string()))?;
    let document: OpenAPI =
        serde_json::from_value(value.clone()).map_err(|error| invalid(error.to_string()))?;
    Ok((value, lower(&document)?))
}

/// Lowers a parsed document into the intermediate model, collecting every error.
pub fn lower(document: &OpenAPI) -> Result<Api, GenErrors> {
    let mut lowering = Lowering::new(document);
    let models = lowering.models();
    let security_schemes = lowering.security_schemes();
    lowering.default_security = document
        .security
        .as_ref()
        .map(|security| lowering.security(security, "#/security"));
    let operations = lowering.operations();
    let base_path = lowering.base_path();
    if lowering.errors.is_empty() {
        Ok(Api {
            base_path,
            tags: document
                .tags
                .iter()
                .map(|tag| TagInfo {
                    name: tag.name.clone(),
                    description: tag.description.clone(),
                })
                .collect(),
            models,
            operations,
            security_schemes,
            scopes: lowering.scopes.into_iter().collect(),
        })
    } else {
        Err(GenErrors(lowering.errors))
    }
}

/// What a component schema is to the generator.
enum Component<'a> {
    /// Becomes a Rust type.
    Model,
    /// A primitive with constraints, inlined where it is used.
    Alias(&'a openapiv3::Schema),
}

struct Lowering<'a> {
    document: &'a OpenAPI,
    components: IndexMap<&'a str, Component<'a>>,
    errors: Vec<GenError>,
    /// The document's `security`, for operations without their own.
    default_security: Option<Vec<Requirement>>,
    /// Every valid scope named so far.
    scopes: BTreeSet<String>,
    /// Every scope named so far, valid or not, so each problem is reported once.
    seen_scopes: HashSet<String>,
    /// `Scope` variant name → the scope it was made from.
    scope_variants: HashMap<String, String>,
}

impl<'a> Lowering<'a> {
    fn new(document: &'a OpenAPI) -> Self {
        let mut components = IndexMap::new();
        let mut errors = Vec::new();
        if let Some(schemas) = document.components.as_ref().map(|c| &c.schemas) {
            for (name, schema) in schemas {
                let at = pointer("#/components/schemas", name);
                match schema {
                    ReferenceOr::Reference { .. } => errors.push(GenError::new(
                        at,
                        "a component schema that is only a $ref is not supported",
                    )),
                    ReferenceOr::Item(schema) => {
                        let component = match &schema.schema_kind {
                            SchemaKind::Type(Type::Object(_)) => Component::Model,
                            SchemaKind::Type(Type::String(string))
                                if !string.enumeration.is_empty() =>
                            {
                                Component::Model
                            }
                            _ => Component::Alias(schema),
                        };
                        components.insert(name.as_str(), component);
                    }
                }
            }
        }
        Self {
            document,
            components,
            errors,
            default_security: None,
            scopes: BTreeSet::new(),
            seen_scopes: HashSet::new(),
            scope_variants: HashMap::new(),
        }
    }

    /// The path of the first server (`servers[0].url`), which every operation's path is
    /// relative to; empty when the document names no server.
    fn base_path(&mut self) -> String {
        let Some(server) = self.document.servers.first() else {
            return String::new();
        };
        let url = server.url.trim_end_matches('/');
        if url.starts_with('/') || url.is_empty() {
            url.to_owned()
        } else {
            self.errors.push(GenError::new(
                "#/servers/0/url",
                "the server URL must be a path (`/api/v3`): the server is reached at whatever \
                 host serves it",
            ));
            String::new()
        }
    }

    /// Checks that a property, parameter or header name becomes a Rust name of its own among
    /// `taken` (Rust name → the wire name it came from); reports it at `at` otherwise.
    fn field_name_is_free(
        &mut self,
        wire: &str,
        taken: &mut HashMap<String, String>,
        at: &str,
    ) -> bool {
        if !names::is_field_name(wire) {
            self.errors.push(GenError::new(
                at,
                format!(
                    "`{wire}` cannot become a Rust name (`{}`): names must start with a letter \
                     and hold letters, digits, `_` or `-`, and not be `self`, `super` or `crate`",
                    names::field_name(wire)
                ),
            ));
            return false;
        }
        let rust = names::field_name(wire);
        if let Some(first) = taken.insert(rust.clone(), wire.to_owned()) {
            self.errors.push(GenError::new(
                at,
                format!("`{wire}` and `{first}` would both become the Rust name `{rust}`"),
            ));
            return false;
        }
        true
    }

    fn security_schemes(&mut self) -> Vec<SecuritySchemeInfo> {
        let Some(schemes) = self
            .document
            .components
            .as_ref()
            .map(|c| &c.security_schemes)
        else {
            return Vec::new();
        };
        let mut lowered = Vec::new();
        let mut consts: HashMap<String, &str> = HashMap::new();
        for (name, scheme) in schemes {
            let at = pointer("#/components/securitySchemes", name);
            let const_name = names::const_name(name);
            if !names::is_const_name(&const_name) {
                self.errors.push(GenError::new(
                    &at,
                    "security scheme names must start with a letter (they become Rust constant \
                     names)",
                ));
            } else if RESERVED_CONSTS.contains(&const_name.as_str()) {
                self.errors.push(GenError::new(
                    &at,
                    format!(
                        "security scheme `{name}` would become the Rust constant `{const_name}`, \
                         which the generator already declares; rename it"
                    ),
                ));
            } else if let Some(other) = consts.insert(const_name.clone(), name) {
                self.errors.push(GenError::new(
                    &at,
                    format!(
                        "security schemes `{other}` and `{name}` both become the Rust constant \
                         `{const_name}`; rename one"
                    ),
                ));
            }
            let ReferenceOr::Item(scheme) = scheme else {
                self.errors
                    .push(GenError::new(at, "$ref security schemes are not supported"));
                continue;
            };
            match scheme_kind(scheme) {
                Ok((kind, description)) => lowered.push(SecuritySchemeInfo {
                    name: name.clone(),
                    kind,
                    description: description.clone(),
                }),
                Err(message) => self.errors.push(GenError::new(at, message)),
            }
        }
        lowered
    }

    /// Lowers a `security` list (the document's or an operation's) at `at`.
    fn security(&mut self, security: &[SecurityRequirement], at: &str) -> Vec<Requirement> {
        let mut lowered = Vec::new();
        for (index, requirement) in security.iter().enumerate() {
            let requirement_at = pointer(at, &index.to_string());
            let mut schemes = Vec::new();
            for (scheme, scopes) in requirement {
                if !self.declares_scheme(scheme) {
                    self.errors.push(GenError::new(
                        &requirement_at,
                        format!("unknown security scheme `{scheme}`"),
                    ));
                    continue;
                }
                let scheme_at = pointer(&requirement_at, scheme);
                for (scope_index, scope) in scopes.iter().enumerate() {
                    self.scope(scope, &pointer(&scheme_at, &scope_index.to_string()));
                }
                schemes.push((scheme.clone(), scopes.clone()));
            }
            lowered.push(schemes);
        }
        lowered
    }

    /// Whether `components/securitySchemes` declares `name` (supported or not: an unsupported
    /// scheme is reported once, where it is declared).
    fn declares_scheme(&self, name: &str) -> bool {
        self.document
            .components
            .as_ref()
            .is_some_and(|c| c.security_schemes.contains_key(name))
    }

    /// Records a scope named at `at`, checking it (once per scope) as a `Scope` variant.
    fn scope(&mut self, scope: &str, at: &str) {
        if !self.seen_scopes.insert(scope.to_owned()) {
            return;
        }
        if !names::is_scope_name(scope) {
            self.errors.push(GenError::new(
                at,
                format!(
                    "scope `{scope}` must match `^[a-z][a-z0-9]*(:[a-z][a-z0-9_]*)*$` (scopes \
                     become Rust variant names)"
                ),
            ));
            return;
        }
        let variant = names::scope_variant(scope);
        if let Some(other) = self.scope_variants.get(&variant) {
            self.errors.push(GenError::new(
                at,
                format!(
                    "scopes `{other}` and `{scope}` both become the Rust variant `{variant}`; \
                     rename one"
                ),
            ));
            return;
        }
        self.scope_variants.insert(variant, scope.to_owned());
        self.scopes.insert(scope.to_owned());
    }

    fn models(&mut self) -> Vec<Model> {
        let Some(schemas) = self.document.components.as_ref().map(|c| &c.schemas) else {
            return Vec::new();
        };
        let mut models = Vec::new();
        for (name, schema) in schemas {
            let ReferenceOr::Item(schema) = schema else {
                continue;
            };
            let at = pointer("#/components/schemas", name);
            if !is_rust_type_name(name) {
                self.errors.push(GenError::new(
                    &at,
                    "component schema names must be UpperCamelCase (they become Rust type names)",
                ));
                continue;
            }
            let description = schema.schema_data.description.clone();
            match &schema.schema_kind {
                SchemaKind::Type(Type::Object(object)) => {
                    if object.additional_properties.is_some() {
                        self.errors.push(GenError::new(
                            &at,
                            "additionalProperties on a named object schema is not supported",
                        ));
                    }
                    let mut fields = Vec::new();
                    let mut rust_names = HashMap::new();
                    for (field_name, field_schema) in &object.properties {
                        let field_at = pointer(&pointer(&at, "properties"), field_name);
                        if !self.field_name_is_free(field_name, &mut rust_names, &field_at) {
                            continue;
                        }
                        let Some(field_schema) =
                            self.schema(&field_schema.clone().unbox(), &field_at)
                        else {
                            continue;
                        };
                        let (read_only, write_only) =
                            match field_schema_data(&field_schema_ref(object, field_name)) {
                                Some(data) => (data.read_only, data.write_only),
                                None => (false, false),
                            };
                        fields.push(Field {
                            name: field_name.clone(),
                            required: object.required.contains(field_name),
                            write_only,
                            read_only,
                            schema: field_schema,
                        });
                    }
                    for required in &object.required {
                        if !object.properties.contains_key(required) {
                            self.errors.push(GenError::new(
                                pointer(&at, "required"),
                                format!("`{required}` is required but not a property"),
                            ));
                        }
                    }
                    models.push(Model::Object(ObjectModel {
                        name: name.clone(),
                        description,
                        fields,
                    }));
                }
                SchemaKind::Type(Type::String(string)) if !string.enumeration.is_empty() => {
                    let mut values = Vec::new();
                    for value in &string.enumeration {
                        match value {
                            Some(value) if heck_ok(value) => values.push(value.clone()),
                            _ => self.errors.push(GenError::new(
                                pointer(&at, "enum"),
                                "enum values must be non-null strings that start with a letter",
                            )),
                        }
                    }
                    models.push(Model::Enum(EnumModel {
                        name: name.clone(),
                        description,
                        values,
                    }));
                }
                _ => {}
            }
        }
        models
    }

    fn operations(&mut self) -> Vec<Operation> {
        let mut operations = Vec::new();
        for (path, item) in &self.document.paths.paths {
            let path_at = pointer("#/paths", path);
            let ReferenceOr::Item(item) = item else {
                self.errors
                    .push(GenError::new(path_at, "$ref path items are not supported"));
                continue;
            };
            if !item.parameters.is_empty() {
                self.errors.push(GenError::new(
                    pointer(&path_at, "parameters"),
                    "path-level parameters are not supported; declare them on each operation",
                ));
            }
            let methods = [
                (Method::Get, &item.get),
                (Method::Put, &item.put),
                (Method::Post, &item.post),
                (Method::Delete, &item.delete),
                (Method::Patch, &item.patch),
            ];
            for (method, operation) in methods {
                if let Some(operation) = operation {
                    let at = pointer(&path_at, method.as_str());
                    if let Some(operation) = self.operation(path, method, operation, &at) {
                        operations.push(operation);
                    }
                }
            }
            for (name, unsupported) in [
                ("options", &item.options),
                ("head", &item.head),
                ("trace", &item.trace),
            ] {
                if unsupported.is_some() {
                    self.errors.push(GenError::new(
                        pointer(&path_at, name),
                        "this method is not supported",
                    ));
                }
            }
        }
        operations
    }

    fn operation(
        &mut self,
        path: &str,
        method: Method,
        operation: &openapiv3::Operation,
        at: &str,
    ) -> Option<Operation> {
        let Some(id) = operation.operation_id.clone() else {
            self.errors
                .push(GenError::new(at, "every operation needs an operationId"));
            return None;
        };
        if !id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            || !id.chars().all(|c| c.is_ascii_alphanumeric())
        {
            self.errors.push(GenError::new(
                pointer(at, "operationId"),
                "operationIds must be lowerCamelCase (they become Rust method names)",
            ));
        }
        let errors_before = self.errors.len();

        let mut params = Vec::new();
        let mut edge_params = Vec::new();
        // The request struct holds the body as `body`, next to the parameters.
        let mut rust_names = HashMap::from([("body".to_owned(), "the request body".to_owned())]);
        for (index, parameter) in operation.parameters.iter().enumerate() {
            let param_at = pointer(&pointer(at, "parameters"), &index.to_string());
            if let Some(param) = self.parameter(parameter, &param_at)
                && self.field_name_is_free(&param.name, &mut rust_names, &param_at)
            {
                if self.handled_by_edge(parameter, &param, &param_at) {
                    edge_params.push(param);
                } else {
                    params.push(param);
                }
            }
        }
        for segment in path_params(path) {
            if !params
                .iter()
                .any(|p| p.location == ParamLocation::Path && p.name == segment)
            {
                self.errors.push(GenError::new(
                    at,
                    format!("path parameter `{segment}` is not declared"),
                ));
            }
        }

        // An operation's own `security`, even `[]`, replaces the document's.
        let security = match &operation.security {
            Some(security) => self.security(security, &pointer(at, "security")),
            None => self.default_security.clone().unwrap_or_default(),
        };

        let body = operation
            .request_body
            .as_ref()
            .and_then(|body| self.request_body(body, &pointer(at, "requestBody")));

        let mut responses = Vec::new();
        let responses_at = pointer(at, "responses");
        if operation.responses.default.is_some() {
            self.errors.push(GenError::new(
                pointer(&responses_at, "default"),
                "`default` responses are not supported (poem-openapi cannot serve them); \
                 document each status, and `5XX` for server errors",
            ));
        }
        for (status, response) in &operation.responses.responses {
            let response_at = pointer(&responses_at, &status.to_string());
            if let Some(response) = self.response(status, response, &response_at) {
                responses.push(response);
            }
        }
        // Judged on the statuses the spec lists, so a response rejected above is not reported a
        // second time as missing.
        let documented: Vec<Status> = operation
            .responses
            .responses
            .keys()
            .filter_map(|status| match status {
                StatusCode::Code(code) => Some(Status::Code(*code)),
                StatusCode::Range(5) => Some(Status::ServerErrors),
                StatusCode::Range(_) => None,
            })
            .collect();
        self.check_outcomes(&documented, body.as_ref(), &security, &responses_at);
        let mcp = self.mcp_tool(operation, at);

        (self.errors.len() == errors_before).then(|| Operation {
            id,
            method,
            path: path.to_owned(),
            tag: operation.tags.first().cloned(),
            summary: operation.summary.clone(),
            description: operation.description.clone(),
            params,
            edge_params,
            body,
            responses,
            security,
            mcp,
        })
    }

    /// Whether the operation is an MCP tool: yes unless it says `x-mcp: false`. Any other value
    /// is refused, so a typo (`x-mcp: "false"`, `x-mcp: no` read as a string) cannot quietly
    /// leave a tool in.
    fn mcp_tool(&mut self, operation: &openapiv3::Operation, at: &str) -> bool {
        match operation.extensions.get("x-mcp") {
            None => true,
            Some(serde_json::Value::Bool(offered)) => *offered,
            Some(_) => {
                self.errors.push(GenError::new(
                    pointer(at, "x-mcp"),
                    "`x-mcp` must be `true` or `false` (whether the operation is an MCP tool)",
                ));
                true
            }
        }
    }

    /// Whether `param` is marked `x-handled-by: edge`: read by the server's edge, documented
    /// but not handed to the handler. Only an optional header can be: a path or query parameter
    /// addresses the resource, and a required one would be a handler's business.
    fn handled_by_edge(
        &mut self,
        parameter: &ReferenceOr<Parameter>,
        param: &Param,
        at: &str,
    ) -> bool {
        let Some(parameter) =
            self.resolve(parameter, "#/components/parameters/", |c| &c.parameters, at)
        else {
            return false;
        };
        let data = parameter.parameter_data_ref();
        let Some(marker) = data.extensions.get("x-handled-by") else {
            return false;
        };
        if marker != "edge" {
            self.errors.push(GenError::new(
                pointer(at, "x-handled-by"),
                "`x-handled-by` can only be `edge`",
            ));
            return false;
        }
        if param.location != ParamLocation::Header || param.required {
            self.errors.push(GenError::new(
                at,
                "only optional header parameters can be handled by the edge",
            ));
            return false;
        }
        true
    }

    /// Every outcome a handler or the edge can produce must have a documented response.
    fn check_outcomes(
        &mut self,
        documented: &[Status],
        body: Option<&Body>,
        security: &[Requirement],
        at: &str,
    ) {
        let has = |status: Status| documented.contains(&status);
        if !has(Status::ServerErrors) {
            self.errors.push(GenError::new(
                at,
                "every operation must document `5XX` server errors",
            ));
        }
        if !documented
            .iter()
            .any(|status| matches!(status, Status::Code(200..=299)))
        {
            self.errors.push(GenError::new(
                at,
                "every operation must document a 2xx response",
            ));
        }
        if let Some(Body {
            content: BodyContent::Json(_),
            ..
        }) = body
        {
            for status in [400, 413, 415, 422] {
                if !has(Status::Code(status)) {
                    self.errors.push(GenError::new(
                        at,
                        format!("an operation with a JSON body must document {status}"),
                    ));
                }
            }
        }
        for (status, why) in [
            (408, "the edge may time out any request"),
            (429, "the edge may rate-limit any request"),
        ] {
            if !has(Status::Code(status)) {
                self.errors.push(GenError::new(
                    at,
                    format!("every operation must document {status} ({why})"),
                ));
            }
        }
        if requires_credentials(security) {
            for status in [401, 403] {
                if !has(Status::Code(status)) {
                    self.errors.push(GenError::new(
                        at,
                        format!(
                            "an operation that requires credentials (no `{{}}` alternative in \
                             its `security`) must document {status}"
                        ),
                    ));
                }
            }
        }
    }

    /// Follows a `$ref` into one of the `components` maps (one level: components that are
    /// themselves references are not supported).
    fn resolve<'d, T>(
        &mut self,
        item: &'d ReferenceOr<T>,
        prefix: &str,
        map: impl FnOnce(&'d Components) -> &'d IndexMap<String, ReferenceOr<T>>,
        at: &str,
    ) -> Option<&'d T>
    where
        'a: 'd,
    {
        let reference = match item {
            ReferenceOr::Item(item) => return Some(item),
            ReferenceOr::Reference { reference } => reference,
        };
        let document: &'d OpenAPI = self.document;
        let resolved = reference
            .strip_prefix(prefix)
            .zip(document.components.as_ref())
            .and_then(|(name, components)| map(components).get(name)?.as_item());
        if resolved.is_none() {
            self.errors
                .push(GenError::new(at, format!("cannot resolve `{reference}`")));
        }
        resolved
    }

    fn parameter(&mut self, parameter: &ReferenceOr<Parameter>, at: &str) -> Option<Param> {
        let parameter =
            self.resolve(parameter, "#/components/parameters/", |c| &c.parameters, at)?;
        let (location, data) = match parameter {
            Parameter::Path { parameter_data, .. } => (ParamLocation::Path, parameter_data),
            Parameter::Query { parameter_data, .. } => (ParamLocation::Query, parameter_data),
            Parameter::Header { parameter_data, .. } => (ParamLocation::Header, parameter_data),
            Parameter::Cookie { .. } => {
                self.errors
                    .push(GenError::new(at, "cookie parameters are not supported"));
                return None;
            }
        };
        if data.explode == Some(false) {
            self.errors.push(GenError::new(
                pointer(at, "explode"),
                "`explode: false` is not supported; repeat the parameter instead",
            ));
        }
        let ParameterSchemaOrContent::Schema(schema) = &data.format else {
            self.errors.push(GenError::new(
                at,
                "parameters with `content` are not supported",
            ));
            return None;
        };
        let schema = self.schema(schema, &pointer(at, "schema"))?;
        let supported = match &schema.kind {
            Kind::Array(item) => !matches!(item.kind, Kind::Array(_) | Kind::Map(_)),
            Kind::Map(_) => false,
            Kind::Named(name) => self.is_enum(name),
            Kind::String(StringFormat::Binary) => false,
            _ => true,
        };
        if !supported {
            self.errors.push(GenError::new(
                pointer(at, "schema"),
                "parameters must be primitives, enums, or arrays of them",
            ));
            return None;
        }
        if let Kind::Array(item) = &schema.kind
            && item.constraints != Constraints::default()
        {
            self.errors.push(GenError::new(
                pointer(&pointer(at, "schema"), "items"),
                "constraints on the items of an array parameter are not supported \
                     (poem-openapi would apply them to the whole array)",
            ));
            return None;
        }
        if location == ParamLocation::Path && !data.required {
            self.errors
                .push(GenError::new(at, "path parameters must be required"));
        }
        let example = data
            .example
            .clone()
            .or_else(|| schema.example.as_deref().cloned());
        Some(Param {
            name: data.name.clone(),
            location,
            required: data.required,
            description: data.description.clone().filter(|d| !d.is_empty()),
            schema,
            example,
        })
    }

    fn request_body(&mut self, body: &ReferenceOr<RequestBody>, at: &str) -> Option<Body> {
        let body = self.resolve(
            body,
            "#/components/requestBodies/",
            |c| &c.request_bodies,
            at,
        )?;
        if !body.required {
            self.errors.push(GenError::new(
                at,
                "optional request bodies are not supported; set `required: true`",
            ));
        }
        let (media_type, media) = self.single_media(&body.content, &pointer(at, "content"))?;
        let content_at = pointer(&pointer(at, "content"), media_type);
        let content = match media_type {
            "application/json" => BodyContent::Json(self.media_schema(media, &content_at)?),
            "application/octet-stream" => {
                let schema = self.media_schema(media, &content_at)?;
                if schema.kind != Kind::String(StringFormat::Binary) {
                    self.errors.push(GenError::new(
                        content_at,
                        "application/octet-stream bodies must be `type: string, format: binary`",
                    ));
                    return None;
                }
                BodyContent::Binary
            }
            other => {
                self.errors.push(GenError::new(
                    content_at,
                    format!("request media type `{other}` is not supported"),
                ));
                return None;
            }
        };
        Some(Body {
            description: body.description.clone(),
            content,
        })
    }

    fn response(
        &mut self,
        status: &StatusCode,
        response: &ReferenceOr<openapiv3::Response>,
        at: &str,
    ) -> Option<Response> {
        let response = self.resolve(response, "#/components/responses/", |c| &c.responses, at)?;
        let status = match status {
            StatusCode::Code(code @ 200..=599) => Status::Code(*code),
            StatusCode::Range(5) => Status::ServerErrors,
            _ => {
                self.errors.push(GenError::new(
                    at,
                    "only status codes 200–599 and `5XX` are supported",
                ));
                return None;
            }
        };
        let is_error = !matches!(status, Status::Code(200..=299));
        if let Status::Code(code) = status
            && is_error
            && names::error_kind(code).is_none()
        {
            let known: Vec<String> = names::ERROR_KINDS
                .iter()
                .map(|(code, _)| code.to_string())
                .collect();
            self.errors.push(GenError::new(
                at,
                format!(
                    "error status {code} has no error kind in the contract (known: {} and \
                     `5XX`); add the kind to petstore-api's `error` module and to \
                     `names::ERROR_KINDS`",
                    known.join(", ")
                ),
            ));
            return None;
        }
        let content = if response.content.is_empty() {
            if is_error {
                self.errors.push(GenError::new(
                    at,
                    format!(
                        "error responses must have an `application/json` `{ERROR_SCHEMA}` body"
                    ),
                ));
                return None;
            }
            ResponseContent::Empty
        } else {
            let (media_type, media) =
                self.single_media(&response.content, &pointer(at, "content"))?;
            let content_at = pointer(&pointer(at, "content"), media_type);
            let schema = self.media_schema(media, &content_at)?;
            match media_type {
                "application/json" if is_error => {
                    if schema.kind != Kind::Named(ERROR_SCHEMA.to_owned()) {
                        self.errors.push(GenError::new(
                            content_at,
                            format!("error responses must use the `{ERROR_SCHEMA}` schema"),
                        ));
                        return None;
                    }
                    ResponseContent::Error
                }
                "application/json" => ResponseContent::Json(schema),
                "image/*" if !is_error && schema.kind == Kind::String(StringFormat::Binary) => {
                    ResponseContent::Image
                }
                other => {
                    self.errors.push(GenError::new(
                        content_at,
                        format!("response media type `{other}` is not supported here"),
                    ));
                    return None;
                }
            }
        };
        let mut headers = Vec::new();
        // A success variant with headers holds the body as `body`, next to them.
        let mut rust_names = HashMap::from([("body".to_owned(), "the body".to_owned())]);
        for (name, header) in &response.headers {
            let header_at = pointer(&pointer(at, "headers"), name);
            if !self.field_name_is_free(name, &mut rust_names, &header_at) {
                continue;
            }
            let Some(header) = header.as_item() else {
                self.errors
                    .push(GenError::new(header_at, "$ref headers are not supported"));
                continue;
            };
            if !header.required {
                self.errors.push(GenError::new(
                    &header_at,
                    "response headers must be `required: true` (the server always sends them)",
                ));
            }
            let ParameterSchemaOrContent::Schema(schema) = &header.format else {
                self.errors.push(GenError::new(
                    header_at,
                    "headers with `content` are not supported",
                ));
                continue;
            };
            let schema_at = pointer(&header_at, "schema");
            if let Some(schema) = self.schema(schema, &schema_at) {
                if content == ResponseContent::Error
                    && !matches!(
                        schema.kind,
                        Kind::Integer(_) | Kind::String(StringFormat::Plain)
                    )
                {
                    self.errors.push(GenError::new(
                        schema_at,
                        "headers of error responses must be `type: string` (no format) or \
                         `type: integer` (the server takes their values from the error)",
                    ));
                    continue;
                }
                headers.push(Header {
                    name: name.clone(),
                    description: header.description.clone(),
                    schema,
                });
            }
        }
        Some(Response {
            status,
            description: response.description.clone(),
            content,
            headers,
        })
    }

    fn single_media<'m>(
        &mut self,
        content: &'m IndexMap<String, MediaType>,
        at: &str,
    ) -> Option<(&'m str, &'m MediaType)> {
        let mut entries = content.iter();
        match (entries.next(), entries.next()) {
            (Some((media_type, media)), None) => Some((media_type.as_str(), media)),
            (None, _) => {
                self.errors
                    .push(GenError::new(at, "a content map must have one media type"));
                None
            }
            (Some(_), Some(_)) => {
                self.errors.push(GenError::new(
                    at,
                    "several media types for one body are not supported; declare only those served",
                ));
                None
            }
        }
    }

    fn media_schema(&mut self, media: &MediaType, at: &str) -> Option<Schema> {
        match &media.schema {
            Some(schema) => self.schema(schema, &pointer(at, "schema")),
            None => {
                self.errors
                    .push(GenError::new(at, "media types must have a schema"));
                None
            }
        }
    }

    fn is_enum(&self, name: &str) -> bool {
        self.document
            .components
            .as_ref()
            .and_then(|c| c.schemas.get(name))
            .and_then(|s| s.as_item())
            .is_some_and(|s| matches!(&s.schema_kind, SchemaKind::Type(Type::String(st)) if !st.enumeration.is_empty()))
    }

    /// Resolves a schema (following `$ref`s to aliases) into its shape and constraints.
    fn schema(&mut self, schema: &ReferenceOr<openapiv3::Schema>, at: &str) -> Option<Schema> {
        match schema {
            ReferenceOr::Reference { reference } => {
                let Some(name) = reference.strip_prefix(SCHEMA_PREFIX) else {
                    self.errors
                        .push(GenError::new(at, format!("cannot resolve `{reference}`")));
                    return None;
                };
                match self.components.get(name) {
                    Some(Component::Model) => Some(Schema {
                        kind: Kind::Named(name.to_owned()),
                        constraints: Constraints::default(),
                        description: None,
                        example: None,
                    }),
                    Some(Component::Alias(alias)) => {
                        let alias = *alias;
                        self.inline_schema(alias, &pointer("#/components/schemas", name))
                    }
                    None => {
                        self.errors
                            .push(GenError::new(at, format!("dangling `$ref`: `{reference}`")));
                        None
                    }
                }
            }
            ReferenceOr::Item(schema) => self.inline_schema(schema, at),
        }
    }

    fn inline_schema(&mut self, schema: &openapiv3::Schema, at: &str) -> Option<Schema> {
        if schema.schema_data.nullable {
            self.errors.push(GenError::new(
                at,
                "`nullable` is not supported; leave the property out instead",
            ));
            return None;
        }
        let description = schema.schema_data.description.clone();
        let mut constraints = Constraints::default();
        let kind = match &schema.schema_kind {
            SchemaKind::Type(Type::Integer(integer)) => {
                if integer.multiple_of.is_some() || !integer.enumeration.is_empty() {
                    self.errors.push(GenError::new(
                        at,
                        "integer `multipleOf`/`enum` are not supported",
                    ));
                    return None;
                }
                constraints.minimum = integer.minimum.map(|value| Bound {
                    value: value as f64,
                    exclusive: integer.exclusive_minimum,
                });
                constraints.maximum = integer.maximum.map(|value| Bound {
                    value: value as f64,
                    exclusive: integer.exclusive_maximum,
                });
                match &integer.format {
                    VariantOrUnknownOrEmpty::Item(IntegerFormat::Int32) => {
                        Kind::Integer(IntFormat::I32)
                    }
                    VariantOrUnknownOrEmpty::Item(IntegerFormat::Int64)
                    | VariantOrUnknownOrEmpty::Empty => Kind::Integer(IntFormat::I64),
                    VariantOrUnknownOrEmpty::Unknown(format) => {
                        self.errors.push(GenError::new(
                            at,
                            format!("integer format `{format}` is not supported"),
                        ));
                        return None;
                    }
                }
            }
            SchemaKind::Type(Type::Number(number)) => {
                if number.multiple_of.is_some() || !number.enumeration.is_empty() {
                    self.errors.push(GenError::new(
                        at,
                        "number `multipleOf`/`enum` are not supported",
                    ));
                    return None;
                }
                constraints.minimum = number.minimum.map(|value| Bound {
                    value,
                    exclusive: number.exclusive_minimum,
                });
                constraints.maximum = number.maximum.map(|value| Bound {
                    value,
                    exclusive: number.exclusive_maximum,
                });
                Kind::Number
            }
            SchemaKind::Type(Type::Boolean(_)) => Kind::Boolean,
            SchemaKind::Type(Type::String(string)) => {
                if !string.enumeration.is_empty() {
                    self.errors.push(GenError::new(
                        at,
                        "inline enums are not supported; make it a named schema in components/schemas",
                    ));
                    return None;
                }
                constraints.min_length = string.min_length;
                constraints.max_length = string.max_length;
                constraints.pattern = string.pattern.clone();
                if string.pattern.as_deref() == Some("") {
                    self.errors.push(GenError::new(at, "empty `pattern`"));
                }
                let format = match &string.format {
                    VariantOrUnknownOrEmpty::Empty => StringFormat::Plain,
                    VariantOrUnknownOrEmpty::Item(OasStringFormat::DateTime) => {
                        StringFormat::DateTime
                    }
                    VariantOrUnknownOrEmpty::Item(OasStringFormat::Binary) => StringFormat::Binary,
                    VariantOrUnknownOrEmpty::Unknown(format) if format == "uuid" => {
                        StringFormat::Uuid
                    }
                    VariantOrUnknownOrEmpty::Item(other) => {
                        let name = match other {
                            OasStringFormat::Date => "date",
                            OasStringFormat::DateTime => "date-time",
                            OasStringFormat::Password => "password",
                            OasStringFormat::Byte => "byte",
                            OasStringFormat::Binary => "binary",
                        };
                        self.errors.push(GenError::new(
                            at,
                            format!("string format `{name}` is not supported"),
                        ));
                        return None;
                    }
                    VariantOrUnknownOrEmpty::Unknown(other) => {
                        self.errors.push(GenError::new(
                            at,
                            format!("string format `{other}` is not supported"),
                        ));
                        return None;
                    }
                };
                Kind::String(format)
            }
            SchemaKind::Type(Type::Array(array)) => {
                constraints.min_items = array.min_items;
                constraints.max_items = array.max_items;
                constraints.unique_items = array.unique_items;
                let Some(items) = &array.items else {
                    self.errors.push(GenError::new(at, "arrays need `items`"));
                    return None;
                };
                let item = self.schema(&items.clone().unbox(), &pointer(at, "items"))?;
                Kind::Array(Box::new(item))
            }
            SchemaKind::Type(Type::Object(object)) => {
                match (&object.additional_properties, object.properties.is_empty()) {
                    (Some(AdditionalProperties::Schema(values)), true) => {
                        let values =
                            self.schema(&(**values).clone(), &pointer(at, "additionalProperties"))?;
                        Kind::Map(Box::new(values))
                    }
                    _ => {
                        self.errors.push(GenError::new(
                            at,
                            "inline object schemas are not supported; move it to components/schemas",
                        ));
                        return None;
                    }
                }
            }
            _ => {
                self.errors.push(GenError::new(
                    at,
                    "oneOf/allOf/anyOf/not and untyped schemas are not supported",
                ));
                return None;
            }
        };
        Some(Schema {
            kind,
            constraints,
            description,
            example: schema.schema_data.example.clone().map(Box::new),
        })
    }
}

/// What a security scheme is to the generator, and its description; or why it is not supported.
fn scheme_kind(scheme: &SecurityScheme) -> Result<(SchemeKind, &Option<String>), String> {
    match scheme {
        SecurityScheme::HTTP {
            scheme,
            bearer_format,
            description,
            ..
        } if scheme.eq_ignore_ascii_case("bearer") => Ok((
            SchemeKind::HttpBearer {
                bearer_format: bearer_format.clone(),
            },
            description,
        )),
        SecurityScheme::HTTP { scheme, .. } => Err(format!(
            "`type: http` security schemes are supported with `scheme: bearer` only; \
             `{scheme}` is not supported"
        )),
        SecurityScheme::APIKey {
            location: APIKeyLocation::Header,
            name,
            description,
            ..
        } => Ok((
            SchemeKind::ApiKeyHeader {
                header: name.clone(),
            },
            description,
        )),
        SecurityScheme::APIKey { location, .. } => {
            let location = match location {
                APIKeyLocation::Query => "query",
                APIKeyLocation::Cookie => "cookie",
                APIKeyLocation::Header => "header",
            };
            Err(format!(
                "`apiKey` security schemes `in: {location}` are not supported; send the key in \
                 a header"
            ))
        }
        SecurityScheme::OAuth2 { .. } => {
            Err("`oauth2` security schemes are not supported".to_owned())
        }
        SecurityScheme::OpenIDConnect { .. } => {
            Err("`openIdConnect` security schemes are not supported".to_owned())
        }
    }
}

fn field_schema_ref<'s>(
    object: &'s openapiv3::ObjectType,
    field: &str,
) -> Option<&'s ReferenceOr<Box<openapiv3::Schema>>> {
    object.properties.get(field)
}

fn field_schema_data<'s>(
    schema: &Option<&'s ReferenceOr<Box<openapiv3::Schema>>>,
) -> Option<&'s openapiv3::SchemaData> {
    match schema {
        Some(ReferenceOr::Item(schema)) => Some(&schema.schema_data),
        _ => None,
    }
}

fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

fn is_rust_type_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
}

fn heck_ok(value: &str) -> bool {
    value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
