//! Pets: CRUD, searches and images.

use std::sync::LazyLock;

use super::{Outcome, PetStore, images};
use crate::{
    api::{
        Serialized,
        models::{ApiResponse, Pet, PetStatus, schemas},
        operations::*,
        validation::Node,
    },
    error::ApiError,
    events::Event,
    store::{NewImage, Stored},
};

/// How many photo URLs a pet may have: the spec's `Pet.photoUrls.maxItems`, so that uploads stop
/// where a client-supplied list would be refused.
static MAX_PHOTOS: LazyLock<usize> = LazyLock::new(|| {
    let Node::Object { properties, .. } = &schemas::PET else {
        return usize::MAX;
    };
    properties
        .iter()
        .find(|property| property.name == "photoUrls")
        .and_then(|property| match property.node {
            Node::Array { max_items, .. } => *max_items,
            _ => None,
        })
        .unwrap_or(usize::MAX)
});

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("pet {id} not found"))
}

fn list(pets: &[std::sync::Arc<Stored<Pet>>]) -> Serialized<Vec<Pet>> {
    Serialized::from_items(pets.iter().map(|pet| &pet.json))
}

pub(super) async fn add_pet(this: &PetStore, request: AddPetRequest) -> Outcome<AddPetResponse> {
    let mut pet = request.body;
    // A pet nobody said otherwise about is for sale; without a status it could never be ordered.
    pet.status.get_or_insert(PetStatus::Available);
    let stored = this.store.create_pet(pet).await?;
    this.publish_pet(Event::PetCreated, &stored).await;
    this.publish_inventory().await;
    Ok(AddPetResponse::Ok(stored.json.clone()))
}

pub(super) async fn update_pet(
    this: &PetStore,
    request: UpdatePetRequest,
) -> Outcome<UpdatePetResponse> {
    let mut pet = request.body;
    let Some(id) = pet.id else {
        return Err(ApiError::invalid_field("id", "is required to update a pet"));
    };
    if pet.status.is_none() {
        // Leaving `status` out keeps it: a replace must not silently drop a pet's sale state.
        let current = this.store.get_pet(id).await?.ok_or_else(|| not_found(id))?;
        pet.status = current.value.status;
    }
    let stored = this.store.replace_pet(pet).await?;
    this.publish_pet(Event::PetUpdated, &stored).await;
    // The old status is not known here; the replace may have changed it.
    this.publish_inventory().await;
    Ok(UpdatePetResponse::Ok(stored.json.clone()))
}

pub(super) async fn find_pets_by_status(
    this: &PetStore,
    request: FindPetsByStatusRequest,
) -> Outcome<FindPetsByStatusResponse> {
    let mut statuses = request.status;
    if statuses.is_empty() {
        statuses.push(PetStatus::Available);
    }
    statuses.sort_unstable();
    statuses.dedup();
    let pets = this.store.find_pets_by_status(&statuses).await?;
    Ok(FindPetsByStatusResponse::Ok(list(&pets)))
}

pub(super) async fn find_pets_by_tags(
    this: &PetStore,
    request: FindPetsByTagsRequest,
) -> Outcome<FindPetsByTagsResponse> {
    let pets = this.store.find_pets_by_tags(&request.tags).await?;
    Ok(FindPetsByTagsResponse::Ok(list(&pets)))
}

pub(super) async fn get_pet_by_id(
    this: &PetStore,
    request: GetPetByIdRequest,
) -> Outcome<GetPetByIdResponse> {
    let pet = this
        .store
        .get_pet(request.pet_id)
        .await?
        .ok_or_else(|| not_found(request.pet_id))?;
    Ok(GetPetByIdResponse::Ok(pet.json.clone()))
}

pub(super) async fn update_pet_with_form(
    this: &PetStore,
    request: UpdatePetWithFormRequest,
) -> Outcome<UpdatePetWithFormResponse> {
    let stored = if request.name.is_none() && request.status.is_none() {
        this.store
            .get_pet(request.pet_id)
            .await?
            .ok_or_else(|| not_found(request.pet_id))?
    } else {
        let status_changes = request.status.is_some();
        let stored = this
            .store
            .update_pet_fields(request.pet_id, request.name, request.status)
            .await?;
        this.publish_pet(Event::PetUpdated, &stored).await;
        if status_changes {
            this.publish_inventory().await;
        }
        stored
    };
    Ok(UpdatePetWithFormResponse::Ok(stored.json.clone()))
}

pub(super) async fn delete_pet(
    this: &PetStore,
    request: DeletePetRequest,
) -> Outcome<DeletePetResponse> {
    let removed = this.store.delete_pet(request.pet_id).await?;
    this.publish_pet_deleted(request.pet_id).await;
    if removed.value.status.is_some() {
        this.publish_inventory().await;
    }
    Ok(DeletePetResponse::Ok)
}

pub(super) async fn upload_file(
    this: &PetStore,
    request: UploadFileRequest,
) -> Outcome<UploadFileResponse> {
    let image = images::sniff(request.body)?;
    let content_type = image.content_type;
    let id = uuid::Uuid::new_v4();
    let url = format!(
        "{}/pet/{}/image/{id}",
        crate::http::API_BASE,
        request.pet_id
    );
    let new_image = NewImage {
        id,
        image,
        metadata: request.additional_metadata,
        url: url.clone(),
    };
    // The pet's `photoUrls` gained the image's URL.
    let pet = this
        .store
        .add_pet_image(request.pet_id, new_image, *MAX_PHOTOS)
        .await?;
    this.publish_pet(Event::PetUpdated, &pet).await;
    let answer = ApiResponse {
        code: Some(200),
        r#type: Some(content_type.to_owned()),
        message: Some(url),
    };
    Ok(UploadFileResponse::Ok(Serialized::new(&answer)))
}

pub(super) async fn get_pet_image(
    this: &PetStore,
    request: GetPetImageRequest,
) -> Outcome<GetPetImageResponse> {
    let image = this
        .store
        .get_pet_image(request.pet_id, request.image_id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "pet {} has no image {}",
                request.pet_id, request.image_id
            ))
        })?;
    Ok(GetPetImageResponse::Ok(image))
}

#[cfg(test)]
mod tests {
    #[test]
    fn photo_limit_comes_from_the_spec() {
        assert_eq!(*super::MAX_PHOTOS, 20);
    }
}
