//! The WebSocket transport: `/api/v3/ws`.
