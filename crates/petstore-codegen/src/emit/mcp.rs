//! `mcp.rs` (server): the MCP tool list (see [`crate::mcp`]), as data the MCP endpoint serves.
//!
//! One constant per tool (name, the action its calls are dispatched as, title, description,
//! the input and output schemas, annotations), the list of them, and a `definitions` module
//! with the component schemas the tools' schemas refer to. Schemas are JSON text, pretty-printed
//! so a reader sees what a client gets; the server parses them once.
//!
//! Runtime items used: `crate::mcp::tools::{Hints, Output, Schema, ToolSpec}` and
//! `petstore_api::ws::Action`.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use serde_json::Value;

use super::{Source, const_ident, format_file, type_ident, usize_literal};
use crate::mcp::{Definition, Document, Form, Hints, McpApi, Output, Tool};

/// Emits `mcp.rs`.
pub fn emit(mcp: &McpApi) -> String {
    let consts: Vec<_> = mcp
        .tools
        .iter()
        .map(|tool| const_ident(&tool.name))
        .collect();
    let tools = mcp.tools.iter().map(|tool| tool_const(mcp, tool));
    let definitions = mcp.definitions.iter().map(definition_consts);
    let count = usize_literal(mcp.tools.len());
    let tokens = quote! {
        use petstore_api::ws::Action;

        use crate::mcp::tools::{Hints, Output, Schema, ToolSpec};

        /// Every tool, in spec order: one per operation not marked `x-mcp: false`.
        pub static TOOLS: [ToolSpec; #count] = [#(#consts),*];

        #(#tools)*

        /// The component schemas the tools' schemas refer to (`#/$defs/Name`), as JSON Schema.
        pub mod definitions {
            #(#definitions)*
        }
    };
    format_file(
        "MCP tools: one per operation, with JSON Schemas of their arguments and results.",
        Source::OpenApi,
        tokens,
    )
}

/// The constant of one tool.
fn tool_const(mcp: &McpApi, tool: &Tool) -> TokenStream {
    let ident = const_ident(&tool.name);
    let doc = format!(" `{}`: {}", tool.name, tool.title.as_deref().unwrap_or(""));
    let name = &tool.name;
    let action = type_ident(&tool.name);
    let title = match &tool.title {
        Some(title) => quote!(Some(#title)),
        None => quote!(None),
    };
    let description = raw(&tool.description);
    let input = schema(mcp, &tool.input);
    let output = match &tool.output {
        Output::Structured {
            schema: document,
            wrapped,
        } => {
            let document = schema(mcp, document);
            quote!(Output::Structured { schema: #document, wrapped: #wrapped })
        }
        Output::Image => quote!(Output::Image),
        Output::Empty { message } => quote!(Output::Empty { message: #message }),
    };
    let Hints {
        read_only,
        destructive,
        idempotent,
    } = tool.hints;
    quote! {
        #[doc = #doc]
        pub const #ident: ToolSpec = ToolSpec {
            name: #name,
            action: Action::#action,
            title: #title,
            description: #description,
            input: #input,
            output: #output,
            hints: Hints {
                read_only: #read_only,
                destructive: #destructive,
                idempotent: #idempotent,
            },
        };
    }
}

/// A `Schema { root, definitions }` expression: the root as JSON text and the definitions by
/// name, each the constant of the form the document uses.
fn schema(mcp: &McpApi, document: &Document) -> TokenStream {
    let root = raw(&pretty(&document.root));
    let definitions = document.definitions.iter().map(|name| {
        let definition = mcp
            .definitions
            .iter()
            .find(|definition| &definition.name == name);
        let ident = match (document.form, definition) {
            (
                Form::Output,
                Some(Definition {
                    output: Some(_), ..
                }),
            ) => result_ident(name),
            _ => const_ident(name),
        };
        quote!((#name, definitions::#ident))
    });
    quote!(Schema { root: #root, definitions: &[#(#definitions),*] })
}

/// The constants of one definition: as arguments carry it, and as results do when that differs.
fn definition_consts(definition: &Definition) -> TokenStream {
    let name = &definition.name;
    let ident = const_ident(name);
    let input = raw(&pretty(&definition.input));
    let result = definition.output.as_ref().map(|output| {
        let ident = result_ident(name);
        let doc = format!(
            " `{name}` as results carry it (read-only fields included, write-only ones left out)."
        );
        let output = raw(&pretty(output));
        quote! {
            #[doc = #doc]
            pub const #ident: &str = #output;
        }
    });
    let doc = if result.is_some() {
        format!(
            " `{name}` as arguments carry it (write-only fields included, read-only ones left out)."
        )
    } else {
        format!(" `{name}`.")
    };
    quote! {
        #[doc = #doc]
        pub const #ident: &str = #input;
        #result
    }
}

/// The constant of a definition's result form (`USER_RESULT`).
fn result_ident(name: &str) -> proc_macro2::Ident {
    format_ident!("{}_RESULT", const_ident(name))
}

/// JSON, pretty-printed with two-space indentation; arrays of plain values (`required`,
/// `enum`, `examples`) on one line.
fn pretty(value: &Value) -> String {
    let mut out = String::new();
    write_pretty(value, 0, &mut out);
    out
}

fn write_pretty(value: &Value, depth: usize, out: &mut String) {
    let indent = |depth: usize| "  ".repeat(depth);
    match value {
        Value::Object(object) if !object.is_empty() => {
            out.push_str("{\n");
            for (index, (key, member)) in object.iter().enumerate() {
                out.push_str(&indent(depth + 1));
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push_str(": ");
                write_pretty(member, depth + 1, out);
                if index + 1 < object.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&indent(depth));
            out.push('}');
        }
        Value::Array(items) if items.iter().any(|item| item.is_object() || item.is_array()) => {
            out.push_str("[\n");
            for (index, item) in items.iter().enumerate() {
                out.push_str(&indent(depth + 1));
                write_pretty(item, depth + 1, out);
                if index + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&indent(depth));
            out.push(']');
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(Value::to_string).collect();
            out.push('[');
            out.push_str(&items.join(", "));
            out.push(']');
        }
        plain => out.push_str(&plain.to_string()),
    }
}

/// A raw string literal (`r#"…"#`) of `text`, with enough `#`s that nothing in it ends the
/// literal: JSON and descriptions read as they are, without escapes.
fn raw(text: &str) -> Literal {
    let mut hashes = String::from("#");
    while text.contains(&format!("\"{hashes}")) {
        hashes.push('#');
    }
    let source = format!("r{hashes}\"{text}\"{hashes}");
    source
        .parse::<Literal>()
        .unwrap_or_else(|_| Literal::string(text))
}
