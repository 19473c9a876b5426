// Compile-only checks (tsc -p tsconfig.check.json): the generated maps type `call`, `on` and
// the results. Never run.
import { PetstoreClient, type Pet, type SubscribedPayload } from "../src/index.js";

export async function typed(client: PetstoreClient): Promise<void> {
  const pet: Pet = await client.call("getPetById", { petId: 1 });
  const pets: Pet[] = await client.call("findPetsByStatus", { status: ["available"] });
  const created: Pet = await client.call("addPet", { body: { name: "Rex", photoUrls: [] } });
  const subscribed: SubscribedPayload = await client.subscribe(["pets"]);
  // @ts-expect-error petId is a number
  await client.call("getPetById", { petId: "1" });
  // @ts-expect-error no such action
  await client.call("getPetByName", {});
  // @ts-expect-error addPet's body needs photoUrls
  await client.call("addPet", { body: { name: "Rex" } });
  client.on("pet.created", (payload) => {
    const name: string = payload.name;
    void name;
  });
  client.on("pet.deleted", (payload) => {
    const id: number = payload.id;
    void id;
  });
  void pet;
  void pets;
  void created;
  void subscribed;
}
