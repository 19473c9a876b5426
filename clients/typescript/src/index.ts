// The petstore-ws TypeScript client: the generated contract and the runtime over it.
export * from "./generated.js";
export * from "./client.js";
