//! [`Ev`]: one event of a live stream (a recipient's or a dispatcher's), as its producer
//! (`web::sse`) makes it, and as either transport sends it: a server-sent event, or a
//! WebSocket text message (`web::ws`).

use axum::response::sse::Event;

/// One event of a live stream, whatever carries it (an SSE event, a WebSocket message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ev {
    /// Its name (`status`, `milestone`, `positions`...).
    pub name: &'static str,
    /// Its feed offset, for events that are not state.
    pub id: Option<u64>,
    /// Its data, JSON.
    pub data: String,
}

impl Ev {
    /// Event `name` with `data` (JSON) and no id.
    pub fn new(name: &'static str, data: impl Into<String>) -> Ev {
        Ev {
            name,
            id: None,
            data: data.into(),
        }
    }

    /// The same event with id `offset`.
    pub fn id(mut self, offset: u64) -> Ev {
        self.id = Some(offset);
        self
    }

    /// As a server-sent event.
    pub fn sse(self) -> Event {
        let e = Event::default().event(self.name).data(self.data);
        match self.id {
            Some(id) => e.id(id.to_string()),
            None => e,
        }
    }

    /// As a WebSocket text message: `{"event": name, "id": offset or null, "data": data}`.
    pub fn json(&self) -> String {
        let id = self.id.map_or("null".to_owned(), |i| i.to_string());
        let name = serde_json::to_string(self.name).unwrap_or_else(|_| "\"\"".into());
        format!("{{\"event\":{name},\"id\":{id},\"data\":{}}}", self.data)
    }
}
