"""Create/read/update/delete round trips through a client generated from `openapi.yaml`.

Schemathesis proves each operation answers within its contract one request at a time; these tests
prove a real generated client can drive whole workflows: that request bodies it serialises are
accepted, that every answer deserialises into its typed model, and that the state changes the spec
promises (a pet reserved by an order, a user renamed, a deleted resource gone) are visible.

`run.py` generates the `petstore_client` package onto `PYTHONPATH` and sets `PETSTORE_BASE_URL`.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid

import petstore_client
import pytest
from petstore_client import (
    Category,
    Order,
    OrderStatus,
    Pet,
    PetApi,
    PetStatus,
    StoreApi,
    Tag,
    User,
    UserApi,
)
from petstore_client.exceptions import NotFoundException


@pytest.fixture(scope="module")
def api_client():
    base_url = os.environ["PETSTORE_BASE_URL"].rstrip("/")
    config = petstore_client.Configuration(host=f"{base_url}/api/v3")
    with petstore_client.ApiClient(config) as client:
        yield client


def unique(prefix: str) -> str:
    """A name no earlier run (or Schemathesis case) has used, so tests can share a server."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def assert_not_found(call, *args) -> None:
    """The call must fail with 404 and the spec's `ErrorResponse` body."""
    with pytest.raises(NotFoundException) as caught:
        call(*args)
    error = caught.value.data
    assert error is not None, f"404 body is not an ErrorResponse: {caught.value.body!r}"
    assert error.code == 404
    assert error.type == "NOT_FOUND"
    assert error.message


def test_pet_add_read_update_find_delete(api_client):
    pets = PetApi(api_client)
    new_pet = Pet(
        name=unique("rex"),
        photo_urls=["https://images.example/rex.png"],
        category=Category(name="Dogs"),
        tags=[Tag(name="contract")],
        status=PetStatus.AVAILABLE,
    )

    created = pets.add_pet(new_pet)
    assert created.id is not None and created.id >= 1, "addPet must assign an id"
    assert created.name == new_pet.name
    assert created.photo_urls == new_pet.photo_urls
    assert created.status == PetStatus.AVAILABLE
    assert created.category is not None and created.category.name == "Dogs"
    assert [tag.name for tag in created.tags or []] == ["contract"]

    fetched = pets.get_pet_by_id(created.id)
    assert fetched == created

    renamed = unique("rex-sold")
    updated = pets.update_pet(
        Pet(id=created.id, name=renamed, photo_urls=[], status=PetStatus.SOLD)
    )
    assert updated.id == created.id
    assert updated.name == renamed
    assert updated.status == PetStatus.SOLD
    assert pets.get_pet_by_id(created.id) == updated

    sold = pets.find_pets_by_status(status=[PetStatus.SOLD])
    assert created.id in [pet.id for pet in sold]
    assert all(pet.status == PetStatus.SOLD for pet in sold)
    ids = [pet.id for pet in sold]
    assert ids == sorted(ids), "findPetsByStatus answers ordered by id"
    available = pets.find_pets_by_status(status=[PetStatus.AVAILABLE])
    assert created.id not in [pet.id for pet in available]

    pets.delete_pet(created.id)
    assert_not_found(pets.get_pet_by_id, created.id)
    assert_not_found(pets.delete_pet, created.id)


def test_user_create_login_read_update_delete(api_client):
    users = UserApi(api_client)
    username = unique("ada")
    password = "correct-horse-battery"
    new_user = User(
        username=username,
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.org",
        password=password,
        phone="+44 20 7946 0000",
        user_status=1,
    )

    created = users.create_user(new_user)
    assert created.username == username
    assert created.id is not None and created.id >= 1
    assert created.password is None, "the password is write-only"

    login = users.login_user_with_http_info(username, password)
    assert login.status_code == 200
    token = login.data
    assert isinstance(token, str) and token.count(".") == 2, "a JWT has three parts"
    headers = {name.lower(): value for name, value in (login.headers or {}).items()}
    assert int(headers["x-rate-limit"]) > 0
    expires = dt.datetime.fromisoformat(headers["x-expires-after"].replace("Z", "+00:00"))
    assert expires > dt.datetime.now(dt.timezone.utc)

    fetched = users.get_user_by_name(username)
    assert fetched == created

    users.update_user(
        username,
        User(
            username=username,
            first_name="Augusta Ada",
            last_name="King",
            email="ada.king@example.org",
            phone="+44 20 7946 0001",
            user_status=2,
        ),
    )
    updated = users.get_user_by_name(username)
    assert updated.id == created.id
    assert (updated.first_name, updated.last_name) == ("Augusta Ada", "King")
    assert updated.email == "ada.king@example.org"
    assert updated.user_status == 2
    assert updated.password is None
    # An update without `password` keeps the old one.
    assert users.login_user(username, password).count(".") == 2

    users.delete_user(username)
    assert_not_found(users.get_user_by_name, username)
    assert_not_found(users.delete_user, username)


def test_store_place_read_inventory_delete_order(api_client):
    pets = PetApi(api_client)
    store = StoreApi(api_client)
    pet = pets.add_pet(Pet(name=unique("tom"), photo_urls=[], status=PetStatus.AVAILABLE))
    assert pet.id is not None
    pending_before = store.get_inventory().get("pending", 0)

    ship_date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=2)
    placed = store.place_order(
        Order(
            pet_id=pet.id,
            quantity=2,
            ship_date=ship_date,
            status=OrderStatus.PLACED,
            complete=False,
        )
    )
    assert placed.id is not None and placed.id >= 1, "placeOrder must assign an id"
    assert placed.pet_id == pet.id
    assert placed.quantity == 2
    assert placed.ship_date == ship_date
    assert placed.status == OrderStatus.PLACED
    assert pets.get_pet_by_id(pet.id).status == PetStatus.PENDING, "an order reserves its pet"

    assert store.get_order_by_id(placed.id) == placed

    inventory = store.get_inventory()
    assert set(inventory) >= {"available", "pending", "sold"}, "every pet status is counted"
    assert all(count >= 0 for count in inventory.values())
    assert inventory["pending"] == pending_before + 1

    store.delete_order(placed.id)
    assert_not_found(store.get_order_by_id, placed.id)
    assert_not_found(store.delete_order, placed.id)
    assert pets.get_pet_by_id(pet.id).status == PetStatus.AVAILABLE, (
        "deleting an undelivered order releases its pet"
    )

    pets.delete_pet(pet.id)
