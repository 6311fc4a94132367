//! What every operation of the OpenAPI document shares, written once instead of on each route:
//! the error answer of CONTRACT §3 and the shape of the path parameters that every route parses
//! the same way. `finish` runs once, on the document the router collected.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{ContentBuilder, KnownFormat, OpenApi, Ref, RefOr, ResponseBuilder, Schema};

/// Completes `doc`: every operation answers `default` with §3's error body (the statuses it
/// names stay listed with their meaning), and every `siteId` in a path is a non-negative integer
/// up to 2^53 − 1, every `…Id` documented as a UUID carries that format.
pub fn finish(doc: &mut OpenApi) {
    let error = RefOr::T(
        ResponseBuilder::new()
            .description(
                "an error: `{\"error\": {\"code\", \"message\"}}` with a code of CONTRACT §3",
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody"))))
                    .build(),
            )
            .build(),
    );
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            op.responses
                .responses
                .entry("default".to_owned())
                .or_insert_with(|| error.clone());
            shape_path_parameters(op);
        }
    }
}

fn shape_path_parameters(op: &mut Operation) {
    for p in op.parameters.iter_mut().flatten() {
        if p.parameter_in == ParameterIn::Path && p.name == "siteId" {
            p.schema = Some(site_id_schema());
        }
    }
}

fn site_id_schema() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .maximum(Some(crate::api::SITE_ID_MAX))
            .description(Some("a site id such as 10000"))
            .build(),
    ))
}
