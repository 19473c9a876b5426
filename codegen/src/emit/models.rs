//! `models.rs`: one Rust type per named schema, and one validation node per schema.

use heck::ToUpperCamelCase;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{
    Patterns, const_ident, docs, field_ident, format_file, node, poem_validator, rust_type,
    type_ident,
};
use crate::ir::{Api, EnumModel, Model, ObjectModel};

/// Emits `models.rs`.
pub fn emit(api: &Api) -> String {
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
    let tokens = quote! {
        #(#types)*

        /// The schemas as data for `crate::api::validation`, which reports every broken constraint
        /// of a JSON document with its path (poem-openapi's own parsing stops at the first one).
        pub mod schemas {
            #[allow(unused_imports)]
            use crate::api::validation::{Limit, Node, Pattern, Property, StringFormat};

            #(#nodes)*
            #pattern_statics
        }
    };
    format_file("Models: the component schemas of openapi.yaml.", tokens)
}

/// A model's doc comment: the schema's description, or a line naming the schema.
fn model_doc(name: &str, description: Option<&str>) -> TokenStream {
    match description {
        Some(description) => docs(Some(description)),
        None => docs(Some(&format!("The `{name}` schema."))),
    }
}

fn object_type(model: &ObjectModel) -> TokenStream {
    let ident = type_ident(&model.name);
    let doc = model_doc(&model.name, model.description.as_deref());
    let fields = model.fields.iter().map(|field| {
        let name = field_ident(&field.name);
        let wire = &field.name;
        let ty = rust_type(&field.schema);
        let ty = if field.required {
            ty
        } else {
            quote!(Option<#ty>)
        };
        let doc = docs(field.schema.description.as_deref());
        let mut attributes = vec![quote!(rename = #wire)];
        if let Some(validator) = poem_validator(&field.schema) {
            attributes.push(validator);
        }
        if field.write_only {
            attributes.push(quote!(write_only));
        }
        if field.read_only {
            attributes.push(quote!(read_only));
        }
        quote! {
            #doc
            #[oai(#(#attributes),*)]
            pub #name: #ty,
        }
    });
    quote! {
        #doc
        #[derive(Debug, Clone, PartialEq, poem_openapi::Object)]
        #[oai(skip_serializing_if_is_none)]
        pub struct #ident {
            #(#fields)*
        }
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
    let count = proc_macro2::Literal::usize_unsuffixed(values.len());
    let declarations = variants.iter().zip(values).map(|(variant, value)| {
        let doc = format!(" `{value}`");
        quote! {
            #[doc = #doc]
            #[oai(rename = #value)]
            #variant,
        }
    });
    quote! {
        #doc
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, poem_openapi::Enum)]
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

        impl ::std::fmt::Display for #ident {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
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
