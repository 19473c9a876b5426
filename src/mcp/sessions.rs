//! MCP sessions (`Mcp-Session-Id`): bounded per client address and in total, bound to the
//! caller that opened them, and ended when idle or too old.
//!
//! The SDK keeps the sessions themselves ([`LocalSessionManager`], which also ends one after
//! its idle time); [`Sessions`] wraps it as the SDK's session manager and keeps a book of who
//! owns each. The MCP endpoint asks the book before it forwards a request:
//!
//! - a request that opens a session (an `initialize` without `Mcp-Session-Id`) takes a
//!   [`Ticket`] first, refused (429) when the client address already holds its share; the SDK
//!   creates the session while the ticket is [current](Ticket::scope), and the book files it
//!   under the ticket's address and caller;
//! - a request for a session is refused as unknown (404, which tells a client to start a new
//!   session) when another caller opened it, or when it has outlived its lifetime (then it is
//!   closed too);
//! - the SDK closes a session (idle timeout, `DELETE`, shutdown) through the manager, which
//!   takes it out of the book, so the counts never outlive the sessions.

use std::{
    cell::RefCell,
    collections::HashMap,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::Stream;
use parking_lot::Mutex;
use rmcp::{
    model::{ClientJsonRpcMessage, ServerJsonRpcMessage},
    transport::streamable_http_server::session::{
        ServerSseMessage, SessionId, SessionManager,
        local::{LocalSessionManager, LocalSessionManagerError, SessionConfig},
    },
};

use crate::telemetry::metrics;

/// Session limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Sessions one client address may hold at once.
    pub per_client: usize,
    /// Sessions the node holds at once.
    pub total: usize,
    /// A session with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// A session older than this is closed, however busy.
    pub lifetime: Duration,
}

/// Who opened a session: the client address and the caller's identity (`None` when anonymous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The client's address, if known.
    pub client: Option<IpAddr>,
    /// The principal's `owner_key`; `None` for an anonymous caller.
    pub caller: Option<String>,
}

/// Why a request for a session is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client address holds its share of sessions, or the node is full.
    Limit,
    /// No such session for this caller: unknown, closed, or opened by someone else.
    Unknown,
}

struct Record {
    owner: Owner,
    opened: Instant,
}

#[derive(Default)]
struct Book {
    sessions: HashMap<SessionId, Record>,
    /// Sessions (and tickets not yet used) per client address.
    per_client: HashMap<IpAddr, usize>,
    /// Tickets taken and not yet used or returned.
    pending: usize,
}

impl Book {
    fn held(&self) -> usize {
        self.sessions.len() + self.pending
    }

    fn release(&mut self, client: Option<IpAddr>) {
        if let Some(client) = client
            && let Some(count) = self.per_client.get_mut(&client)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_client.remove(&client);
            }
        }
    }
}

/// The SDK's session manager with the book of owners and limits.
pub struct Sessions {
    inner: LocalSessionManager,
    book: Arc<Mutex<Book>>,
    limits: SessionLimits,
}

/// A place for one new session, taken before the request that opens it is forwarded; given back
/// when dropped unused.
pub struct Ticket {
    owner: Owner,
    book: Arc<Mutex<Book>>,
    used: bool,
}

tokio::task_local! {
    /// The ticket of the request being forwarded, for [`Sessions::create_session`].
    static CURRENT: RefCell<Option<Ticket>>;
}

impl Ticket {
    /// Runs `future` (the forwarding of the request that opens a session) with this ticket
    /// current, so the session the SDK creates in it is filed under its owner.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(RefCell::new(Some(self)), future).await
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.used {
            let mut book = self.book.lock();
            book.pending = book.pending.saturating_sub(1);
            book.release(self.owner.client);
        }
    }
}

impl Sessions {
    /// Sessions within `limits`.
    pub fn new(limits: SessionLimits) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config = session_config(limits.idle_timeout);
        Self {
            inner,
            book: Arc::default(),
            limits,
        }
    }

    /// A ticket for a new session of `owner`.
    ///
    /// # Errors
    /// [`Refusal::Limit`] when the address or the node holds its share.
    pub fn ticket(&self, owner: Owner) -> Result<Ticket, Refusal> {
        let mut book = self.book.lock();
        let of_client = owner
            .client
            .and_then(|client| book.per_client.get(&client).copied())
            .unwrap_or(0);
        if of_client >= self.limits.per_client || book.held() >= self.limits.total {
            drop(book);
            metrics::mcp().session_refused();
            return Err(Refusal::Limit);
        }
        book.pending += 1;
        if let Some(client) = owner.client {
            *book.per_client.entry(client).or_default() += 1;
        }
        Ok(Ticket {
            owner,
            book: Arc::clone(&self.book),
            used: false,
        })
    }

    /// Whether `caller` may use session `id`; a session past its lifetime is closed here.
    ///
    /// # Errors
    /// [`Refusal::Unknown`] for a session that is not there, not the caller's, or too old.
    pub async fn check(&self, id: &str, caller: Option<&str>) -> Result<(), Refusal> {
        let expired = {
            let book = self.book.lock();
            let record = book.sessions.get(id).ok_or(Refusal::Unknown)?;
            if record.owner.caller.as_deref() != caller {
                tracing::debug!(session = id, "MCP session used by another caller");
                return Err(Refusal::Unknown);
            }
            record.opened.elapsed() > self.limits.lifetime
        };
        if expired {
            tracing::debug!(session = id, "MCP session past its lifetime; closed");
            let _ = self.close_session(&SessionId::from(id)).await;
            return Err(Refusal::Unknown);
        }
        Ok(())
    }

    /// Closes every session older than its lifetime (those idle are closed by the SDK).
    pub async fn close_expired(&self) {
        let expired: Vec<SessionId> = {
            let book = self.book.lock();
            book.sessions
                .iter()
                .filter(|(_, record)| record.opened.elapsed() > self.limits.lifetime)
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in expired {
            let _ = self.close_session(&id).await;
        }
    }

    /// How many sessions are open.
    pub fn open(&self) -> usize {
        self.book.lock().sessions.len()
    }

    fn file(&self, id: &SessionId) {
        let ticket = CURRENT
            .try_with(|current| current.borrow_mut().take())
            .ok()
            .flatten();
        let owner = match ticket {
            Some(mut ticket) => {
                ticket.used = true;
                let mut book = self.book.lock();
                book.pending = book.pending.saturating_sub(1);
                ticket.owner.clone()
            }
            // Only the endpoint forwards requests, and it takes a ticket for every one that
            // may open a session; anything else is filed as a session nobody may use.
            None => {
                tracing::warn!(session = %id, "MCP session created without a ticket");
                Owner {
                    client: None,
                    caller: Some(String::new()),
                }
            }
        };
        self.book.lock().sessions.insert(
            id.clone(),
            Record {
                owner,
                opened: Instant::now(),
            },
        );
        metrics::mcp().session_opened();
    }

    fn forget(&self, id: &SessionId) {
        let mut book = self.book.lock();
        if let Some(record) = book.sessions.remove(id) {
            book.release(record.owner.client);
            drop(book);
            metrics::mcp().session_closed();
        }
    }
}

/// The SDK's session settings: the idle timeout; the rest as the SDK has them.
fn session_config(idle_timeout: Duration) -> SessionConfig {
    let mut config = SessionConfig::default();
    config.keep_alive = Some(idle_timeout);
    config
}

impl SessionManager for Sessions {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let (id, transport) = self.inner.create_session().await?;
        self.file(&id);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.forget(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_client: usize, total: usize) -> SessionLimits {
        SessionLimits {
            per_client,
            total,
            idle_timeout: Duration::from_secs(60),
            lifetime: Duration::from_secs(3600),
        }
    }

    fn owner(client: [u8; 4], caller: Option<&str>) -> Owner {
        Owner {
            client: Some(IpAddr::from(client)),
            caller: caller.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn tickets_are_bounded_per_client_and_in_total_and_come_back_unused() {
        let sessions = Sessions::new(limits(2, 3));
        let first = sessions.ticket(owner([10, 0, 0, 1], None));
        let second = sessions.ticket(owner([10, 0, 0, 1], None));
        assert!(first.is_ok() && second.is_ok());
        assert!(matches!(
            sessions.ticket(owner([10, 0, 0, 1], None)),
            Err(Refusal::Limit)
        ));
        let other = sessions.ticket(owner([10, 0, 0, 2], None));
        assert!(other.is_ok());
        assert!(matches!(
            sessions.ticket(owner([10, 0, 0, 3], None)),
            Err(Refusal::Limit)
        ));
        drop(first);
        assert!(sessions.ticket(owner([10, 0, 0, 1], None)).is_ok());
    }

    #[tokio::test]
    async fn a_session_is_filed_under_its_ticket_and_only_its_caller_may_use_it() {
        let sessions = Sessions::new(limits(1, 10));
        let ticket = sessions.ticket(owner([10, 0, 0, 1], Some("alice")));
        let Ok(ticket) = ticket else {
            panic!("no ticket");
        };
        let created = ticket.scope(sessions.create_session()).await;
        let Ok((id, _transport)) = created else {
            panic!("no session");
        };
        assert_eq!(sessions.open(), 1);
        assert!(sessions.check(&id, Some("alice")).await.is_ok());
        assert_eq!(
            sessions.check(&id, Some("bob")).await,
            Err(Refusal::Unknown)
        );
        assert_eq!(sessions.check(&id, None).await, Err(Refusal::Unknown));
        assert_eq!(
            sessions.check("no-such-session", Some("alice")).await,
            Err(Refusal::Unknown)
        );
        // The address's one place is taken by the session, until it closes.
        assert!(matches!(
            sessions.ticket(owner([10, 0, 0, 1], Some("alice"))),
            Err(Refusal::Limit)
        ));
        assert!(sessions.close_session(&id).await.is_ok());
        assert_eq!(sessions.open(), 0);
        assert!(sessions.ticket(owner([10, 0, 0, 1], Some("alice"))).is_ok());
    }

    #[tokio::test]
    async fn a_session_past_its_lifetime_is_closed_when_used() {
        let mut short = limits(5, 10);
        short.lifetime = Duration::ZERO;
        let sessions = Sessions::new(short);
        let Ok(ticket) = sessions.ticket(owner([10, 0, 0, 1], None)) else {
            panic!("no ticket");
        };
        let Ok((id, _transport)) = ticket.scope(sessions.create_session()).await else {
            panic!("no session");
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(sessions.check(&id, None).await, Err(Refusal::Unknown));
        assert_eq!(sessions.open(), 0);
    }
}
