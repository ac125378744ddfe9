//! With the `tracing` feature the span tree is the process tree: each
//! child's span is a child of its manager's, so an event logged inside a
//! child carries the child's whole path in its span ancestry.
#![cfg(feature = "tracing")]

use std::sync::{Arc, Mutex};

use procmgr::{ProcessManager, process_fn};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// The `name` field of a span, kept in its extensions.
struct SpanName(String);

struct NameVisitor(Option<String>);

impl Visit for NameVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "name" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "name" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// An event's message and the names of the spans it is in, outermost first.
type Seen = (String, Vec<String>);

/// Records what every event saw.
#[derive(Clone, Default)]
struct Ancestry(Arc<Mutex<Vec<Seen>>>);

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Ancestry {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut name = NameVisitor(None);
        attrs.record(&mut name);
        if let (Some(name), Some(span)) = (name.0, ctx.span(id)) {
            span.extensions_mut().insert(SpanName(name));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut message = MessageVisitor(String::new());
        event.record(&mut message);
        let names = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .filter_map(|span| span.extensions().get::<SpanName>().map(|n| n.0.clone()))
                    .collect()
            })
            .unwrap_or_default();
        self.0.lock().expect("lock").push((message.0, names));
    }
}

#[tokio::test(start_paused = true)]
async fn the_span_ancestry_of_a_child_three_levels_down_is_its_path() {
    let ancestry = Ancestry::default();
    let subscriber = tracing_subscriber::registry().with(ancestry.clone());
    // The test's runtime has one thread, so a default for this thread covers
    // every task.
    let _default = tracing::subscriber::set_default(subscriber);

    let inner = ProcessManager::builder().name("inner").build();
    inner
        .insert(process_fn("leaf", |_ctx| async {
            tracing::info!("leaf says hi");
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let middle = ProcessManager::builder().name("middle").build();
    middle.insert(inner).expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    root.insert(middle).expect("accepted");
    root.await.expect("clean run");

    let events = ancestry.0.lock().expect("lock").clone();
    let (_, spans) = events
        .iter()
        .find(|(message, _)| message == "leaf says hi")
        .expect("the child's event was seen");
    assert_eq!(spans.join("/"), "root/middle/inner/leaf");
    // The manager's own events about a child sit in the manager's span.
    let (_, spans) = events
        .iter()
        .find(|(message, _)| message == "process started")
        .expect("a start was logged");
    assert!(spans.join("/").starts_with("root/"), "{spans:?}");
}
