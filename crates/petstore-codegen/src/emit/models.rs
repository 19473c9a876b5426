//! `models.rs` (contract): one serde type per named schema, the size limits the schema states as
//! constants, and one validation node per schema.
//!
//! Runtime items used: `crate::wire` (how date-times and bytes travel) and
//! `crate::validation` (the node types).

use heck::{ToShoutySnakeCase, ToUpperCamelCase};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{
    Patterns, Source, Uses, const_ident, docs, field_ident, format_file, node, rust_type,
    serde_field, type_ident, usize_literal,
};
use crate::ir::{Api, EnumModel, Model, ObjectModel};

/// Emits `models.rs`.
pub fn emit(api: &Api) -> String {
    let mut uses = Uses::default();
    for model in &api.models {
        if let Model::Object(object) = model {
            for field in &object.fields {
                uses.add(&field.schema);
            }
        }
    }
    let imports = uses.library_imports();
    let mut patterns = Patterns::default();
    let types = api.models.iter().map(|model| match model {
        Model::Object(object) => object_type(object),
        Model::Enum(enumeration) => enum_type(enumeration),
    });
    let nodes: Vec<TokenStream> = api
        .models
        .iter()
        .map(|model| match model {
            Model::Object(object) => object_node(object, &mut patterns),
            Model::Enum(enumeration) => enum_node(enumeration),
        })
        .collect();
    let pattern_statics = patterns.statics();
    let validation_imports = validation_imports(&pattern_statics, &nodes);
    let tokens = quote! {
        #imports
        use serde::{Deserialize, Serialize};

        #(#types)*

        /// The schemas as data for `crate::validation`, which reports every broken constraint of
        /// a JSON document with its path.
        pub mod schemas {
            #validation_imports

            #(#nodes)*
            #pattern_statics
        }
    };
    format_file(
        "Models: the component schemas of openapi.yaml.",
        Source::OpenApi,
        tokens,
    )
}

/// The `use crate::validation::{…}` item naming exactly the node types `tokens` mention.
pub(crate) fn validation_imports(patterns: &TokenStream, nodes: &[TokenStream]) -> TokenStream {
    let text = format!("{patterns} {}", quote!(#(#nodes)*));
    let names: Vec<_> = ["Limit", "Node", "Pattern", "Property", "StringFormat"]
        .into_iter()
        .filter(|name| {
            text.split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|word| word == *name)
        })
        .map(|name| format_ident!("{name}"))
        .collect();
    if names.is_empty() {
        TokenStream::new()
    } else {
        quote!(use crate::validation::{#(#names),*};)
    }
}

/// A model's doc comment: the schema's description, or a line naming the schema.
fn model_doc(name: &str, description: Option<&str>) -> TokenStream {
    match description {
        Some(description) => docs(Some(description)),
        None => docs(Some(&format!("The `{name}` schema."))),
    }
}

/// One constant per size limit of a field (`maxItems` of `photoUrls` →
/// `PHOTO_URLS_MAX_ITEMS`), so code that must stay inside the schema names the spec's number.
fn limit_constants(model: &ObjectModel) -> Vec<TokenStream> {
    let mut constants = Vec::new();
    for field in &model.fields {
        let c = &field.schema.constraints;
        let field_name = field.name.to_shouty_snake_case();
        for (keyword, value) in [
            ("minLength", c.min_length),
            ("maxLength", c.max_length),
            ("minItems", c.min_items),
            ("maxItems", c.max_items),
        ] {
            let Some(value) = value else { continue };
            let ident = format_ident!("{}_{}", field_name, keyword.to_shouty_snake_case());
            let doc = format!(" `{}.{}`: `{keyword}: {value}`.", model.name, field.name);
            let value = usize_literal(value);
            constants.push(quote!(#[doc = #doc] pub const #ident: usize = #value;));
        }
    }
    constants
}

fn object_type(model: &ObjectModel) -> TokenStream {
    let ident = type_ident(&model.name);
    let doc = model_doc(&model.name, model.description.as_deref());
    let fields = model.fields.iter().map(|field| {
        let name = field_ident(&field.name);
        let ty = rust_type(&field.schema, &TokenStream::new());
        let ty = if field.required {
            ty
        } else {
            quote!(Option<#ty>)
        };
        let mut text = field
            .schema
            .description
            .clone()
            .unwrap_or_else(|| format!("`{}`.", field.name));
        if field.read_only {
            text.push_str("\n\nRead-only: sent, never accepted.");
        }
        if field.write_only {
            text.push_str(if field.required {
                "\n\nWrite-only: accepted, never sent."
            } else {
                "\n\nWrite-only: accepted, never sent (stores keep it `None`)."
            });
        }
        let doc = docs(Some(&text));
        let attributes = serde_field(&field.name, &field.schema, !field.required, true);
        quote! {
            #doc
            #attributes
            pub #name: #ty,
        }
    });
    let constants = limit_constants(model);
    let limits = (!constants.is_empty()).then(|| {
        quote! {
            impl #ident {
                #(#constants)*
            }
        }
    });
    quote! {
        #doc
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct #ident {
            #(#fields)*
        }

        #limits
    }
}

fn enum_type(model: &EnumModel) -> TokenStream {
    let ident = type_ident(&model.name);
    let doc = model_doc(&model.name, model.description.as_deref());
    let variants: Vec<_> = model
        .values
        .iter()
        .map(|value| format_ident!("{}", value.to_upper_camel_case()))
        .collect();
    let values = &model.values;
    let count = usize_literal(values.len());
    let declarations = variants.iter().zip(values).map(|(variant, value)| {
        let doc = format!(" `{value}`");
        quote! {
            #[doc = #doc]
            #[serde(rename = #value)]
            #variant,
        }
    });
    quote! {
        #doc
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum #ident {
            #(#declarations)*
        }

        impl #ident {
            /// Every value, in spec order.
            pub const ALL: [Self; #count] = [#(Self::#variants),*];

            /// The value as on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    #(Self::#variants => #values,)*
                }
            }
        }

        impl std::fmt::Display for #ident {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    }
}

fn object_node(model: &ObjectModel, patterns: &mut Patterns) -> TokenStream {
    let ident = const_ident(&model.name);
    let name = &model.name;
    let doc = format!(" Checks a `{name}`.");
    let properties = model.fields.iter().map(|field| {
        let wire = &field.name;
        let required = field.required;
        let read_only = field.read_only;
        let node = node(&field.schema, patterns);
        quote!(Property { name: #wire, required: #required, read_only: #read_only, node: #node })
    });
    quote! {
        #[doc = #doc]
        pub static #ident: Node = Node::Object { name: #name, properties: &[#(#properties),*] };
    }
}

fn enum_node(model: &EnumModel) -> TokenStream {
    let ident = const_ident(&model.name);
    let name = &model.name;
    let values = &model.values;
    let doc = format!(" Checks a `{name}`.");
    quote! {
        #[doc = #doc]
        pub static #ident: Node = Node::Enum { name: #name, values: &[#(#values),*] };
    }
}
