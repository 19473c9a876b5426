//! Pets: CRUD, searches and images.

use petstore_api::{
    Serialized,
    error::{Invalid, NotFound},
    models::{ApiResponse, Pet, PetStatus},
    operations::*,
};

use super::{PetStore, images};
use crate::{
    events::Event,
    rules::pet_not_found,
    store::{NewImage, Stored},
};

fn list(pets: &[std::sync::Arc<Stored<Pet>>]) -> Serialized<Vec<Pet>> {
    Serialized::from_items(pets.iter().map(|pet| &pet.json))
}

pub(super) async fn add_pet(
    this: &PetStore,
    request: AddPetRequest,
) -> Result<AddPetResponse, AddPetError> {
    let mut pet = request.body;
    // A pet nobody said otherwise about is for sale; without a status it could never be ordered.
    pet.status.get_or_insert(PetStatus::Available);
    let stored = this.store.create_pet(pet).await?;
    this.publish_pet_and_inventory(Event::PetCreated, &stored)
        .await;
    Ok(AddPetResponse::Ok(stored.json.clone()))
}

pub(super) async fn update_pet(
    this: &PetStore,
    request: UpdatePetRequest,
) -> Result<UpdatePetResponse, UpdatePetError> {
    let mut pet = request.body;
    let Some(id) = pet.id else {
        return Err(Invalid::field("id", "is required to update a pet").into());
    };
    if pet.status.is_none() {
        // Leaving `status` out keeps it: a replace must not silently drop a pet's sale state.
        let current = this
            .store
            .get_pet(id)
            .await?
            .ok_or_else(|| pet_not_found(id))?;
        pet.status = current.value.status;
    }
    let stored = this.store.replace_pet(pet).await?;
    // The old status is not known here; the replace may have changed it.
    this.publish_pet_and_inventory(Event::PetUpdated, &stored)
        .await;
    Ok(UpdatePetResponse::Ok(stored.json.clone()))
}

pub(super) async fn find_pets_by_status(
    this: &PetStore,
    request: FindPetsByStatusRequest,
) -> Result<FindPetsByStatusResponse, FindPetsByStatusError> {
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
) -> Result<FindPetsByTagsResponse, FindPetsByTagsError> {
    let pets = this.store.find_pets_by_tags(&request.tags).await?;
    Ok(FindPetsByTagsResponse::Ok(list(&pets)))
}

pub(super) async fn get_pet_by_id(
    this: &PetStore,
    request: GetPetByIdRequest,
) -> Result<GetPetByIdResponse, GetPetByIdError> {
    let pet = this
        .store
        .get_pet(request.pet_id)
        .await?
        .ok_or_else(|| pet_not_found(request.pet_id))?;
    Ok(GetPetByIdResponse::Ok(pet.json.clone()))
}

pub(super) async fn update_pet_with_form(
    this: &PetStore,
    request: UpdatePetWithFormRequest,
) -> Result<UpdatePetWithFormResponse, UpdatePetWithFormError> {
    let stored = if request.name.is_none() && request.status.is_none() {
        this.store
            .get_pet(request.pet_id)
            .await?
            .ok_or_else(|| pet_not_found(request.pet_id))?
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
) -> Result<DeletePetResponse, DeletePetError> {
    let removed = this.store.delete_pet(request.pet_id).await?;
    this.publish_pet_deleted(request.pet_id, removed.version)
        .await;
    if removed.value.status.is_some() {
        this.publish_inventory().await;
    }
    Ok(DeletePetResponse::Ok)
}

pub(super) async fn upload_file(
    this: &PetStore,
    request: UploadFileRequest,
) -> Result<UploadFileResponse, UploadFileError> {
    let image = images::sniff(request.body)?;
    let content_type = image.content_type;
    let id = uuid::Uuid::new_v4();
    let url = format!("{API_BASE}/pet/{}/image/{id}", request.pet_id);
    let new_image = NewImage {
        id,
        image,
        metadata: request.additional_metadata,
        url: url.clone(),
    };
    // The pet's `photoUrls` gained the image's URL.
    let pet = this
        .store
        .add_pet_image(request.pet_id, new_image, Pet::PHOTO_URLS_MAX_ITEMS)
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
) -> Result<GetPetImageResponse, GetPetImageError> {
    let image = this
        .store
        .get_pet_image(request.pet_id, request.image_id)
        .await?
        .ok_or_else(|| {
            NotFound(format!(
                "pet {} has no image {}",
                request.pet_id, request.image_id
            ))
        })?;
    Ok(GetPetImageResponse::Ok(image))
}
