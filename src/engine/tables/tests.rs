use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::*;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Utf8, true),
        Field::new("zip3", DataType::Int64, true),
    ]))
}

fn row(key: &str, zip: i64) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec![key])),
            Arc::new(Int64Array::from(vec![zip])),
        ],
    )
    .unwrap()
}

/// (key, zip3) pairs of a state's table, in its (key) order.
fn pairs(b: &RecordBatch) -> Vec<(String, i64)> {
    let keys = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    let zips = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
    (0..b.num_rows())
        .map(|i| (keys.value(i).to_string(), zips.value(i)))
        .collect()
}

fn p(key: &str, zip: i64) -> (String, i64) {
    (key.to_string(), zip)
}

#[test]
fn a_window_sees_per_key_the_latest_version_before_its_end() {
    let mut t = TableState::new(schema());
    t.upsert("b".into(), 100, row("b", 1));
    t.upsert("a".into(), 50, row("a", 2));
    // Arrives later but is older in event time: not the latest.
    t.upsert("b".into(), 80, row("b", 3));
    t.upsert("b".into(), 200, row("b", 4));
    assert_eq!(pairs(&t.as_of(50).unwrap()), vec![]);
    assert_eq!(pairs(&t.as_of(51).unwrap()), vec![p("a", 2)]);
    assert_eq!(pairs(&t.as_of(150).unwrap()), vec![p("a", 2), p("b", 1)]);
    // The end is exclusive, as a window's is.
    assert_eq!(pairs(&t.as_of(200).unwrap()), vec![p("a", 2), p("b", 1)]);
    assert_eq!(pairs(&t.as_of(201).unwrap()), vec![p("a", 2), p("b", 4)]);
}

#[test]
fn of_equal_event_times_the_later_arrival_wins() {
    let mut t = TableState::new(schema());
    t.upsert("a".into(), 10, row("a", 1));
    t.upsert("a".into(), 10, row("a", 2));
    assert_eq!(pairs(&t.as_of(11).unwrap()), vec![p("a", 2)]);
}

#[test]
fn a_tombstone_deletes_the_key_from_then_on_and_a_later_version_brings_it_back() {
    let mut t = TableState::new(schema());
    t.upsert("a".into(), 10, row("a", 1));
    t.upsert("b".into(), 10, row("b", 1));
    t.delete("a");
    // A tombstone for a key never seen changes nothing.
    t.delete("zz");
    assert_eq!(pairs(&t.as_of(100).unwrap()), vec![p("b", 1)]);
    assert_eq!(
        t.len(),
        1,
        "a deleted key is dropped once no window can see it"
    );
    t.upsert("a".into(), 300, row("a", 7));
    assert_eq!(pairs(&t.as_of(200).unwrap()), vec![p("b", 1)]);
    assert_eq!(pairs(&t.as_of(301).unwrap()), vec![p("a", 7), p("b", 1)]);
}

#[test]
fn versions_no_later_window_can_see_are_dropped() {
    let mut t = TableState::new(schema());
    for v in 0..100 {
        t.upsert("a".into(), v * 10, row("a", v));
    }
    assert_eq!(pairs(&t.as_of(505).unwrap()), vec![p("a", 50)]);
    assert_eq!(
        t.keys["a"].len(),
        50,
        "the chosen version and the 49 later ones"
    );
    assert_eq!(pairs(&t.as_of(10_000).unwrap()), vec![p("a", 99)]);
    assert_eq!(t.keys["a"].len(), 1);
}

#[test]
fn the_key_text_of_any_column_type_and_none_for_null() {
    let b = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec![Some("p-1"), None])),
            Arc::new(Int64Array::from(vec![Some(42), None])),
        ],
    )
    .unwrap();
    assert_eq!(key_text(&b, 0, 0).as_deref(), Some("p-1"));
    assert_eq!(key_text(&b, 1, 0).as_deref(), Some("42"));
    assert_eq!(key_text(&b, 0, 1), None);
    assert_eq!(key_text(&b, 1, 1), None);
}
