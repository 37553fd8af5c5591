//! Figures → one page of the Prometheus text format (version 0.0.4), with
//! prometheus-client's encoder. Both `serve --metrics-listen` and
//! `tickwatch exporter` render through [`page`], so the two show the same
//! names, labels and types (listed in docs/operations.md, "Metrics").

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{HistogramFigures, NodeFigures, ProcessFigures};

/// The `Content-Type` of a page.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A process whose figures a page shows, and the node it serves when it is
/// one node's process (process mode, seen by the exporter).
#[derive(Debug, Clone)]
pub struct Proc {
    /// (task, node) of a process-mode node; `None` for the serving process
    /// itself (socket mode).
    pub node: Option<(String, String)>,
    /// Its figures.
    pub figures: ProcessFigures,
}

/// What only the exporter reports about its own scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExporterFigures {
    /// Nodes whose control socket answered this scrape.
    pub answered: u64,
    /// Nodes with a control socket that did not answer (dead, stuck, or
    /// another version), skipped this scrape.
    pub unreachable: u64,
    /// Unreachable nodes over the exporter's life.
    pub unreachable_total: u64,
}

/// Everything on one page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The nodes.
    pub nodes: Vec<NodeFigures>,
    /// The processes.
    pub processes: Vec<Proc>,
    /// Set by the exporter.
    pub exporter: Option<ExporterFigures>,
}

/// The page as Prometheus text.
pub fn page(page: Page) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(page));
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug
    // in our figures (none are possible with these types).
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::error!("cannot encode metrics: {e}");
    }
    out
}

type NodeLabels<'a> = [(&'static str, &'a str); 2];
type FieldLabels<'a> = [(&'static str, &'a str); 3];

fn node_labels(n: &NodeFigures) -> NodeLabels<'_> {
    [("task", n.task.as_str()), ("node", n.node.as_str())]
}

fn counter(m: &mut MetricEncoder, v: u64) -> Result<(), std::fmt::Error> {
    m.encode_counter::<NoLabelSet, u64, f64>(&v, None)
}

fn histogram(m: &mut MetricEncoder, h: &HistogramFigures) -> Result<(), std::fmt::Error> {
    // The encoder accumulates: hand it per-bucket counts.
    let mut prev = 0;
    let buckets: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .map(|&(le, cum)| {
            let n = cum.saturating_sub(prev);
            prev = cum;
            (le, n)
        })
        .collect();
    m.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &buckets, None)
}

impl Page {
    /// A metric with one series per node.
    fn per_node(
        &self,
        e: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        kind: MetricType,
        each: impl Fn(&mut MetricEncoder, &NodeFigures) -> Result<(), std::fmt::Error>,
    ) -> Result<(), std::fmt::Error> {
        if self.nodes.is_empty() {
            return Ok(());
        }
        let mut m = e.encode_descriptor(name, help, None, kind)?;
        for n in &self.nodes {
            let labels = node_labels(n);
            each(&mut m.encode_family(&labels)?, n)?;
        }
        Ok(())
    }

    /// A metric with one series per node and tracked field.
    fn per_field(
        &self,
        e: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        kind: MetricType,
        each: impl Fn(&mut MetricEncoder, &super::FieldFigures) -> Result<(), std::fmt::Error>,
    ) -> Result<(), std::fmt::Error> {
        if self.nodes.iter().all(|n| n.fields.is_empty()) {
            return Ok(());
        }
        let mut m = e.encode_descriptor(name, help, None, kind)?;
        for n in &self.nodes {
            for f in &n.fields {
                let labels: FieldLabels =
                    [("task", &n.task), ("node", &n.node), ("field", &f.field)];
                each(&mut m.encode_family(&labels)?, f)?;
            }
        }
        Ok(())
    }

    /// A gauge with one series per process.
    fn per_process<V: EncodeGaugeValue>(
        &self,
        e: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: impl Fn(&ProcessFigures) -> V,
    ) -> Result<(), std::fmt::Error> {
        if self.processes.is_empty() {
            return Ok(());
        }
        let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for p in &self.processes {
            let v = value(&p.figures);
            match &p.node {
                None => m.encode_gauge(&v)?,
                Some((task, node)) => {
                    let labels: NodeLabels = [("task", task), ("node", node)];
                    m.encode_family(&labels)?.encode_gauge(&v)?;
                }
            }
        }
        Ok(())
    }
}

impl Collector for Page {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge, Histogram};
        let e = &mut e;
        {
            let mut m = e.encode_descriptor(
                "tickwatch_nodes",
                "Nodes (Kapacitor task nodes) being served.",
                None,
                Gauge,
            )?;
            m.encode_gauge(&(self.nodes.len() as u64))?;
        }
        if !self.nodes.is_empty() {
            let mut m = e.encode_descriptor(
                "tickwatch_node",
                "A node being served and its detector (always 1).",
                None,
                MetricType::Info,
            )?;
            for n in &self.nodes {
                let labels = [
                    ("task", n.task.as_str()),
                    ("node", n.node.as_str()),
                    ("detector", n.detector.as_str()),
                ];
                m.encode_info(&labels)?;
            }
        }
        self.per_node(e, "tickwatch_batches", "Batches processed.", Counter, |m, n| {
            counter(m, n.batches)
        })?;
        self.per_node(e, "tickwatch_points_in", "Points received in batches.", Counter, |m, n| {
            counter(m, n.points_in)
        })?;
        self.per_node(
            e,
            "tickwatch_queue_items",
            "Batches and requests read but not yet processed.",
            Gauge,
            |m, n| m.encode_gauge(&n.queue_items),
        )?;
        self.per_node(
            e,
            "tickwatch_queue_bytes",
            "Bytes queued for the node (frames plus 512 per point); bounded at 8 MiB plus one \
             batch.",
            Gauge,
            |m, n| m.encode_gauge(&n.queue_bytes),
        )?;
        self.per_node(
            e,
            "tickwatch_commit_seconds",
            "State commits to the node's database, including the flush and fdatasync unless \
             group commit is on; one commit may hold several batches.",
            Histogram,
            |m, n| histogram(m, &n.commit),
        )?;
        self.per_field(
            e,
            "tickwatch_values",
            "Usable values of the field scored by the detector.",
            Counter,
            |m, f| counter(m, f.values),
        )?;
        self.per_field(
            e,
            "tickwatch_values_skipped",
            "Unusable values of the field skipped (NaN, infinite, string or bool).",
            Counter,
            |m, f| counter(m, f.skipped),
        )?;
        self.per_field(
            e,
            "tickwatch_points_out",
            "Points emitted for the field (one per batch that produced a verdict).",
            Counter,
            |m, f| counter(m, f.verdicts),
        )?;
        self.per_field(
            e,
            "tickwatch_anomalies",
            "Points emitted for the field with anomalous=true.",
            Counter,
            |m, f| counter(m, f.anomalies),
        )?;
        self.per_field(
            e,
            "tickwatch_score_seconds",
            "Detector score calls for the field (one per batch and group).",
            Histogram,
            |m, f| histogram(m, &f.score),
        )?;
        self.per_field(
            e,
            "tickwatch_state_bytes",
            "Bytes of persisted detector state of the field, over all groups.",
            Gauge,
            |m, f| m.encode_gauge(&f.state_bytes),
        )?;
        self.per_field(
            e,
            "tickwatch_state_groups",
            "Groups with persisted state for the field.",
            Gauge,
            |m, f| m.encode_gauge(&f.state_groups),
        )?;
        self.per_process(
            e,
            "tickwatch_process_resident_memory_bytes",
            "Resident set size of the serving process.",
            |p| p.rss_bytes,
        )?;
        self.per_process(
            e,
            "tickwatch_process_uptime_seconds",
            "Seconds since the serving process started.",
            |p| p.uptime_seconds,
        )?;
        if let Some(x) = self.exporter {
            let mut m = e.encode_descriptor(
                "tickwatch_exporter_nodes_answered",
                "Live nodes whose control socket answered this scrape.",
                None,
                Gauge,
            )?;
            m.encode_gauge(&x.answered)?;
            let mut m = e.encode_descriptor(
                "tickwatch_exporter_nodes_unreachable",
                "Nodes with a control socket that did not answer this scrape (skipped).",
                None,
                Gauge,
            )?;
            m.encode_gauge(&x.unreachable)?;
            let mut m = e.encode_descriptor(
                "tickwatch_exporter_unreachable",
                "Unanswered node queries since the exporter started.",
                None,
                Counter,
            )?;
            counter(&mut m, x.unreachable_total)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{FieldFigures, Histogram as Hist};

    fn node(task: &str) -> NodeFigures {
        let h = Hist::default();
        h.observe_ns(30_000);
        h.observe_ns(2_000_000);
        NodeFigures {
            task: task.into(),
            node: "tTest2".into(),
            detector: "ttest".into(),
            batches: 7,
            points_in: 2100,
            queue_items: 1,
            queue_bytes: 4096,
            commit: h.figures(),
            fields: vec![FieldFigures {
                field: "hotend".into(),
                values: 2099,
                skipped: 1,
                verdicts: 7,
                anomalies: 2,
                score: h.figures(),
                state_bytes: 1234,
                state_groups: 1,
            }],
        }
    }

    #[test]
    fn a_page_names_every_series_with_its_labels() {
        let text = page(Page {
            nodes: vec![node("print_temps"), node("we\"ird\ntask")],
            processes: vec![Proc {
                node: None,
                figures: ProcessFigures { pid: 1, rss_bytes: 5 << 20, uptime_seconds: 2.5 },
            }],
            exporter: None,
        });
        for line in [
            "# TYPE tickwatch_batches_total counter",
            "tickwatch_batches_total{task=\"print_temps\",node=\"tTest2\"} 7",
            "tickwatch_points_in_total{task=\"print_temps\",node=\"tTest2\"} 2100",
            "tickwatch_values_total{task=\"print_temps\",node=\"tTest2\",field=\"hotend\"} 2099",
            "tickwatch_values_skipped_total{task=\"print_temps\",node=\"tTest2\",field=\"hotend\"} 1",
            "tickwatch_points_out_total{task=\"print_temps\",node=\"tTest2\",field=\"hotend\"} 7",
            "tickwatch_anomalies_total{task=\"print_temps\",node=\"tTest2\",field=\"hotend\"} 2",
            "tickwatch_state_bytes{task=\"print_temps\",node=\"tTest2\",field=\"hotend\"} 1234",
            "tickwatch_queue_bytes{task=\"print_temps\",node=\"tTest2\"} 4096",
            "# TYPE tickwatch_score_seconds histogram",
            "tickwatch_score_seconds_bucket{task=\"print_temps\",node=\"tTest2\",field=\"hotend\",le=\"5e-05\"} 1",
            "tickwatch_score_seconds_bucket{task=\"print_temps\",node=\"tTest2\",field=\"hotend\",le=\"0.0025\"} 2",
            "tickwatch_score_seconds_bucket{task=\"print_temps\",node=\"tTest2\",field=\"hotend\",le=\"+Inf\"} 2",
            "tickwatch_score_seconds_count{task=\"print_temps\",node=\"tTest2\",field=\"hotend\"} 2",
            "tickwatch_commit_seconds_count{task=\"print_temps\",node=\"tTest2\"} 2",
            "tickwatch_node_info{task=\"print_temps\",node=\"tTest2\",detector=\"ttest\"} 1",
            "tickwatch_nodes 2",
            "tickwatch_process_resident_memory_bytes 5242880",
            "tickwatch_process_uptime_seconds 2.5",
            // A hostile id stays inside its label.
            "tickwatch_batches_total{task=\"we\\\"ird\\ntask\",node=\"tTest2\"} 7",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Each metric is declared once, whatever the number of nodes.
        assert_eq!(text.matches("# TYPE tickwatch_values_total counter").count(), 1);
        assert!(!text.contains("exporter"));
    }

    #[test]
    fn an_empty_page_still_says_how_many_nodes() {
        let text = page(Page::default());
        assert!(text.lines().any(|l| l == "tickwatch_nodes 0"), "{text}");
        assert!(!text.contains("tickwatch_batches"));
    }
}
