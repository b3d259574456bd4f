//! Plain-text tables for `make deploy DRY_RUN=1` (GitHub-flavoured Markdown, so the output can
//! be pasted into a pull request or docs as it is).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::Plan;
use crate::rules::Report;

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", header.iter().map(|_| "---|").collect::<String>());
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

/// Resolved parameters, one column per region.
pub fn parameters(plan: &Plan) -> String {
    let mut out = String::from("## Parameters per region\n\n");
    let mut header = vec!["parameter"];
    header.extend(plan.regions.iter().map(|r| r.env.name.as_str()));
    let names: BTreeSet<&String> = plan.regions.iter().flat_map(|r| r.template.params.keys()).collect();
    let mut rows = vec![
        std::iter::once("(AWS region)".to_owned()).chain(plan.regions.iter().map(|r| r.env.region.clone())).collect(),
        std::iter::once("(stack)".to_owned()).chain(plan.regions.iter().map(|r| r.env.stack_name.clone())).collect(),
    ];
    for name in names {
        let mut row = vec![name.clone()];
        row.extend(plan.regions.iter().map(|r| r.template.param(name).unwrap_or("").to_owned()));
        rows.push(row);
    }
    table(&mut out, &header, &rows);
    out
}

/// The connection budget: function × region, and the total against the database.
pub fn budget(plan: &Plan, report: &Report) -> String {
    let mut out = String::from("## Connection budget (the primary, shared by every region)\n\n");
    let _ = writeln!(
        out,
        "Per instance = min(DB_MAX_CONNECTIONS / MAX_CONCURRENCY, 2 in Lambda), computed by the functions' own \
         start-up code; worst case = per instance × reserved concurrency.\n"
    );
    let rows: Vec<Vec<String>> = report
        .budget
        .iter()
        .map(|r| {
            let opt = |v: Option<usize>| v.map_or("–".to_owned(), |v| v.to_string());
            vec![
                r.region.clone(),
                r.function.clone(),
                opt(r.reserved_concurrency),
                opt(r.budget),
                opt(r.per_instance),
                opt(r.worst_case),
                r.error.clone().map_or_else(|| "ok".to_owned(), |e| format!("REFUSES TO START: {e}")),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "region",
            "function",
            "reserved concurrency",
            "DB_MAX_CONNECTIONS",
            "pool per instance",
            "worst case",
            "start-up",
        ],
        &rows,
    );
    let verdict =
        if report.budget_total <= report.budget_limit && report.of("budget").is_empty() { "PASS" } else { "FAIL" };
    let _ = writeln!(
        out,
        "Total worst case {} of {} (max_connections {} − reserved {}): **{verdict}**\n",
        report.budget_total, report.budget_limit, plan.database.max_connections, plan.database.reserved
    );
    out
}

/// Every alarm and the seed trigger it implements.
pub fn alarms(report: &Report) -> String {
    let mut out = String::from("## Alarms (to the stage's SNS topic)\n\n");
    let rows: Vec<Vec<String>> = report
        .alarms
        .iter()
        .map(|a| {
            vec![
                a.region.clone(),
                a.name.clone(),
                a.trigger.unwrap_or("(extra)").to_owned(),
                a.metric.replace('|', "\\|"),
                a.statistic.clone(),
                a.condition.clone(),
            ]
        })
        .collect();
    table(&mut out, &["region", "alarm", "seed trigger", "metric", "statistic", "alarms when"], &rows);
    out
}

/// The resources each region gets, by type.
pub fn resources(plan: &Plan) -> String {
    let mut out = String::from("## Resources per region\n\n");
    let mut by_type: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in &plan.regions {
        for res in r.template.resources.values() {
            by_type.entry((res.kind.clone(), res.name.clone())).or_default().push(r.env.name.clone());
        }
    }
    let all = plan.regions.len();
    let rows: Vec<Vec<String>> = by_type
        .into_iter()
        .map(|((kind, name), regions)| {
            let where_ = if regions.len() == all { "all".to_owned() } else { regions.join(", ") };
            vec![name, kind, where_]
        })
        .collect();
    table(&mut out, &["logical id", "type", "regions"], &rows);
    out
}

/// The findings, or a line saying there are none.
pub fn findings(report: &Report) -> String {
    if report.findings.is_empty() {
        return "## Rules\n\nAll deploy rules pass.\n\n".to_owned();
    }
    let mut out = String::from("## Rules: FAILED\n\n");
    for f in &report.findings {
        let _ = writeln!(out, "- {f}");
    }
    out.push('\n');
    out
}
