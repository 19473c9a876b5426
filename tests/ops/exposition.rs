//! A reader for the Prometheus text exposition format, enough for the metrics suites
//! (`observability`, `deploy`): families with their `HELP` and `TYPE`,
//! and samples with their labels.
//!
//! Parsing is strict where a sloppy exporter would hide: a sample line that does not parse fails
//! the test with the line.

use std::collections::{BTreeMap, BTreeSet};

/// One sample: `name{label="value",…} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name (`…_bucket` for a histogram bucket).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A parsed `/metrics` document.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// `TYPE` of each family, by family name.
    pub types: BTreeMap<String, String>,
    /// Families that have a `HELP` line.
    pub helped: BTreeSet<String>,
    /// Every sample, in document order.
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Parses `text`; panics with the offending line if it is not the text format.
    pub fn parse(text: &str) -> Self {
        let mut exposition = Self::default();
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split_whitespace().next().unwrap_or_default();
                exposition.helped.insert(name.to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                match (words.next(), words.next()) {
                    (Some(name), Some(kind)) => {
                        exposition.types.insert(name.to_owned(), kind.to_owned());
                    }
                    _ => panic!("malformed TYPE line: {line:?}"),
                }
            } else if line.starts_with('#') {
                continue;
            } else {
                exposition.samples.push(parse_sample(line));
            }
        }
        exposition
    }

    /// The sum of the samples named `name` whose labels include every pair of `labels` (0 when
    /// there are none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|sample| sample.value).sum()
    }

    /// The samples named `name` whose labels include every pair of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
        })
    }

    /// The one sample named `name` with exactly these labels' values; panics if absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self.matching(name, labels).collect();
        match found.as_slice() {
            [sample] => sample.value,
            [] => panic!("no sample {name}{labels:?}"),
            more => panic!("{} samples match {name}{labels:?}: {more:?}", more.len()),
        }
    }

    /// Every series name a query can use: counters and gauges by their name, histograms and
    /// summaries by their `_bucket`/`_sum`/`_count` (and `_quantile`-less) series, plus every
    /// sample name actually present.
    pub fn series_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.samples.iter().map(|s| s.name.clone()).collect();
        for (family, kind) in &self.types {
            match kind.as_str() {
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{family}{suffix}"));
                    }
                }
                "summary" => {
                    names.insert(family.clone());
                    for suffix in ["_sum", "_count"] {
                        names.insert(format!("{family}{suffix}"));
                    }
                }
                _ => {
                    names.insert(family.clone());
                }
            }
        }
        names
    }
}

fn parse_sample(line: &str) -> Sample {
    let fail = || -> ! { panic!("malformed sample line: {line:?}") };
    let (series, value) = match line.rfind('}') {
        Some(end) => (&line[..=end], line[end + 1..].trim()),
        None => match line.split_once(' ') {
            Some((series, value)) => (series, value.trim()),
            None => fail(),
        },
    };
    // An optional timestamp follows the value.
    let value = value.split_whitespace().next().unwrap_or_else(|| fail());
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        number => number.parse().unwrap_or_else(|_| fail()),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').unwrap_or_else(|| fail());
            (name, parse_labels(body).unwrap_or_else(|| fail()))
        }
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// `a="x",b="y\"z"` → {a: x, b: y"z}.
fn parse_labels(body: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (index, '"') => break index,
                (_, other) => value.push(other),
            }
        };
        labels.insert(key.trim().to_owned(), value);
        rest = after[end + 2..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::Exposition;

    #[test]
    fn samples_labels_and_histogram_series_are_read() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"t\"} 3\n\
                    # TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\ng 7 1700000000\n";
        let parsed = Exposition::parse(text);
        assert_eq!(parsed.value("a_total", &[("x", "1")]), 3.0);
        assert_eq!(parsed.value("a_total", &[("y", "q\"t")]), 3.0);
        assert_eq!(parsed.value("h_bucket", &[("le", "+Inf")]), 2.0);
        assert_eq!(parsed.value("g", &[]), 7.0);
        assert!(parsed.helped.contains("a_total"));
        for name in ["a_total", "h_bucket", "h_sum", "h_count", "g"] {
            assert!(parsed.series_names().contains(name), "{name}");
        }
    }
}
