//! The HTML pages, written with maud so that every interpolated value is escaped.
//!
//! The pages use no JavaScript and load nothing else: the CSS is inlined, the uptime bars are
//! inline SVG, and everything a bar's colours say is also said in text (the percentage beside
//! it, and each day's `<title>`, which shows on hover and is what assistive technology reads
//! when the day is focused).

use std::ops::Range;

use jiff::civil::Date;
use jiff::{SignedDuration, ToSpan};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use tocsin_core::Timestamp;

use crate::layout::Entry;
use crate::model::{
    ComponentView, DayUptime, IncidentView, MaintenanceStatus, MaintenanceView, UpdateView,
};
use crate::status::{component_tone, impact_label, impact_tone, update_status_label};
use crate::text::{
    human_date, human_time, incident_path, local_date, maintenance_path, percent, rfc3339,
    update_anchor,
};
use crate::Context;

const STYLE: &str = include_str!("style.css");

/// The formula the uptime figures follow, stated on the page; [`DayUptime::percent`] computes
/// it, and the two must say the same.
pub(crate) const UPTIME_FORMULA: &str = "Uptime is the share of checks that succeeded: \
     (up + degraded) ÷ all checks, per day, over the component's monitors. \
     Days without checks are shown as no data.";

/// How many days "Past incidents" covers on the main page; the rest is in the history.
const PAST_DAYS: i64 = 7;

/// The width of one day in the bar's coordinates, and of its rectangle (the rest is a gap).
const DAY_WIDTH: usize = 10;
const RECT_WIDTH: usize = 8;
const BAR_HEIGHT: usize = 30;

/// Every page: (path, markup).
pub(crate) fn pages(context: &Context<'_>) -> Vec<(String, Markup)> {
    let mut pages = vec![
        ("/status".to_owned(), status_page(context)),
        ("/status/history".to_owned(), history_page(context)),
    ];
    for incident in &context.view.incidents {
        pages.push((
            incident_path(&incident.id),
            incident_page(context, incident),
        ));
    }
    for maintenance in &context.view.maintenances {
        pages.push((
            maintenance_path(&maintenance.id),
            maintenance_page(context, maintenance),
        ));
    }
    pages
}

/// Whether the header's page title is the page's heading (on the main page) or a link back to
/// it (on every other page, whose heading is its subject).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Brand {
    Heading,
    Link,
}

fn layout(context: &Context<'_>, title: &str, brand: Brand, content: Markup) -> Markup {
    let page = &context.view.page;
    let brand_content = html! {
        @if let Some(logo) = &page.logo_url {
            img src=(logo) alt=(page.title);
        } @else {
            (page.title)
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) }
                link rel="alternate" type="application/atom+xml"
                    title={ (page.title) " · updates" } href="/status/feed.atom";
                style { (PreEscaped(STYLE)) }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    div.wrap {
                        @if brand == Brand::Heading {
                            h1.brand { (brand_content) }
                        } @else {
                            p.brand { a href="/status" { (brand_content) } }
                        }
                        @if !page.links.is_empty() {
                            nav aria-label="Links" {
                                ul {
                                    @for (label, url) in &page.links {
                                        li { a href=(url) { (label) } }
                                    }
                                }
                            }
                        }
                    }
                }
                main #main.wrap { (content) }
                footer.wrap {
                    p {
                        "Updated "
                        (time(context, context.view.data_as_of))
                        ". Times are in "
                        (context.zone.iana_name().unwrap_or("UTC"))
                        "."
                    }
                    p {
                        a href="/status/feed.atom" { "Atom feed" }
                        " · "
                        a href="/api/v2/summary.json" { "JSON API" }
                        " · "
                        a href="/status/history" { "Incident history" }
                    }
                }
            }
        }
    }
}

fn status_page(context: &Context<'_>) -> Markup {
    let view = context.view;
    let overall = context.overall;
    let open: Vec<&IncidentView> = view
        .incidents
        .iter()
        .filter(|incident| incident.status.is_open())
        .collect();
    let mut maintenances: Vec<&MaintenanceView> = view
        .maintenances
        .iter()
        .filter(|maintenance| maintenance.status != MaintenanceStatus::Completed)
        .collect();
    maintenances.sort_by_key(|maintenance| maintenance.scheduled_for);
    let title = &view.page.title;
    let content = html! {
        section class={ "banner " (overall.tone) } aria-labelledby="overall" {
            h2 #overall {
                span.icon aria-hidden="true" { (tone_icon(overall.tone)) }
                (overall.banner)
            }
        }
        @if !open.is_empty() {
            section aria-labelledby="active" {
                h2 #active { "Active incidents" }
                ul.plain {
                    @for incident in &open {
                        li { (incident_card(context, incident, Heading::H3, Updates::All)) }
                    }
                }
            }
        }
        @if !maintenances.is_empty() {
            section aria-labelledby="maintenance" {
                h2 #maintenance { "Scheduled maintenance" }
                ul.plain {
                    @for maintenance in &maintenances {
                        li { (maintenance_card(context, maintenance)) }
                    }
                }
            }
        }
        (components_section(context))
        (past_incidents(context))
    };
    layout(context, title, Brand::Heading, content)
}

fn components_section(context: &Context<'_>) -> Markup {
    html! {
        section aria-labelledby="components" {
            h2 #components { "Components" }
            @if context.layout.is_empty() {
                p.none { "No components are shown on this page." }
            } @else {
                p.muted {
                    (UPTIME_FORMULA)
                    " The percentage beside each bar applies the same formula to all of its days together."
                }
                ul.legend aria-label="Colours of the uptime bars" {
                    li { span.sw.u1 {} "100%" }
                    li { span.sw.u2 {} "99% or more" }
                    li { span.sw.u3 {} "95% or more" }
                    li { span.sw.u4 {} "Below 95%" }
                    li { span.sw.u0 {} "No data" }
                }
                ul.components {
                    @for entry in &context.layout {
                        @match entry {
                            Entry::Single(component) => {
                                li { (component_item(context, component, Heading::H3)) }
                            }
                            Entry::Group(group) => {
                                li {
                                    div.row {
                                        h3 { (group.name) }
                                        (status_label(group.status()))
                                    }
                                    ul {
                                        @for member in &group.members {
                                            li { (component_item(context, member, Heading::H4)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The level of an item's heading, one below the section it sits in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Heading {
    H3,
    H4,
}

fn component_item(context: &Context<'_>, component: &ComponentView, heading: Heading) -> Markup {
    html! {
        div.row {
            @if heading == Heading::H3 {
                h3 { (component.name) }
            } @else {
                h4 { (component.name) }
            }
            (status_label(component.status))
        }
        @if let Some(description) = &component.description {
            p.desc { (description) }
        }
        (uptime_bar(context, component))
    }
}

fn status_label(status: crate::model::ComponentStatus) -> Markup {
    let tone = component_tone(status);
    html! {
        span class={ "st " (tone) } {
            span.icon aria-hidden="true" { (tone_icon(tone)) }
            (status.label())
        }
    }
}

/// A symbol beside each status, so that it is told apart by shape as well as colour.
fn tone_icon(tone: &str) -> &'static str {
    match tone {
        "ok" => "✓",
        "maint" => "◷",
        "minor" | "major" => "!",
        _ => "✕",
    }
}

/// The component's days as one SVG: a rectangle per day, each focusable and titled with its
/// date, uptime and incidents. A day with incidents links to the first of them that has a page.
///
/// The SVG is a labelled group rather than `role="img"`: an image's children are hidden from
/// assistive technology, and the days must stay reachable, each read out by its title.
fn uptime_bar(context: &Context<'_>, component: &ComponentView) -> Markup {
    let days = &component.days;
    if days.is_empty() {
        return html! { p.muted { "No uptime data yet." } };
    }
    let (succeeded, checks) = days
        .iter()
        .fold((0_i64, 0_i64), |(succeeded, checks), day| {
            (
                succeeded + day.up + day.degraded,
                checks + day.up + day.degraded + day.down,
            )
        });
    let overall = (checks > 0).then(|| percent(succeeded as f64 * 100.0 / checks as f64));
    let count = days.len();
    let mut label = component.name.clone();
    label.push_str(": ");
    label.push_str(&count.to_string());
    label.push_str("-day uptime ");
    label.push_str(overall.as_deref().unwrap_or("no data"));
    html! {
        svg.bar viewBox={ "0 0 " (count * DAY_WIDTH) " " (BAR_HEIGHT) } preserveAspectRatio="none"
            role="group" aria-label=(label) {
            @for (index, day) in days.iter().enumerate() {
                @if let Some(incident_id) = day.incidents.iter().map(|(id, _)| id).find(|id| context.has_incident(id)) {
                    a href=(incident_path(incident_id)) { (day_shape(index, day)) }
                } @else {
                    g tabindex="0" { (day_shape(index, day)) }
                }
            }
        }
        p.span {
            span { (count) " days ago" }
            span {
                @if let Some(overall) = &overall {
                    (overall) " uptime"
                } @else {
                    "No data"
                }
            }
            span { "Today" }
        }
    }
}

fn day_shape(index: usize, day: &DayUptime) -> Markup {
    let class = match day.percent() {
        None => "u0",
        Some(value) if value >= 100.0 => "u1",
        Some(value) if value >= 99.0 => "u2",
        Some(value) if value >= 95.0 => "u3",
        Some(_) => "u4",
    };
    let mut title = human_date(day.day);
    match day.percent() {
        Some(value) => {
            title.push_str(": ");
            title.push_str(&percent(value));
            title.push_str(" uptime");
        }
        None => title.push_str(": no data"),
    }
    if !day.incidents.is_empty() {
        title.push_str("; incidents: ");
        let names: Vec<&str> = day
            .incidents
            .iter()
            .map(|(_, name)| name.as_str())
            .collect();
        title.push_str(&names.join(", "));
    }
    html! {
        title { (title) }
        rect x=(index * DAY_WIDTH) width=(RECT_WIDTH) height=(BAR_HEIGHT) class=(class) {}
    }
}

/// How many updates an incident card lists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Updates {
    All,
    Latest,
}

fn incident_card(
    context: &Context<'_>,
    incident: &IncidentView,
    heading: Heading,
    updates: Updates,
) -> Markup {
    let shown = match updates {
        Updates::All => &incident.updates[..],
        Updates::Latest => &incident.updates[..incident.updates.len().min(1)],
    };
    html! {
        article class={ "card " (impact_tone(incident.impact)) } {
            @if heading == Heading::H3 {
                h3 { a href=(incident_path(&incident.id)) { (incident.name) } }
            } @else {
                h4 { a href=(incident_path(&incident.id)) { (incident.name) } }
            }
            p.meta {
                span class={ "st " (impact_tone(incident.impact)) } { (impact_label(incident.impact)) }
                " · " (incident.status.label())
                " · Started " (time(context, incident.started_at))
                @if let Some(resolved_at) = incident.resolved_at {
                    " · Resolved " (time(context, resolved_at))
                }
            }
            @if !incident.components.is_empty() {
                p.meta { "Affects: " (component_names(context, &incident.components)) }
            }
            ol.updates {
                @for update in shown {
                    li { (update_item(context, update)) }
                }
            }
        }
    }
}

fn update_item(context: &Context<'_>, update: &UpdateView) -> Markup {
    let status = update_status_label(&update.status);
    html! {
        p.meta { strong { (status) } " · " (time(context, update.created_at)) }
        p.body { (update.body) }
        @if !update.affected.is_empty() {
            ul.changes {
                @for affected in &update.affected {
                    li {
                        (affected.name) ": " (affected.old_status.label()) " → "
                        (affected.new_status.label())
                    }
                }
            }
        }
    }
}

fn maintenance_card(context: &Context<'_>, maintenance: &MaintenanceView) -> Markup {
    html! {
        article.card.maint {
            h3 { a href=(maintenance_path(&maintenance.id)) { (maintenance.name) } }
            p.meta {
                span.st.maint { (maintenance.status.label()) }
                " · " (time_range(context, maintenance))
            }
            @if !maintenance.components.is_empty() {
                p.meta { "Components: " (component_names(context, &maintenance.components)) }
            }
            p.body { (maintenance.body) }
        }
    }
}

/// Incidents closed over the last week, by the day they started, every day listed so that a
/// quiet day reads as one.
fn past_incidents(context: &Context<'_>) -> Markup {
    let today = local_date(context.view.data_as_of, &context.zone);
    let days: Vec<(Date, Vec<&IncidentView>)> = (0..PAST_DAYS)
        .filter_map(|age| today.checked_sub(age.days()).ok())
        .map(|day| {
            let incidents = context
                .view
                .incidents
                .iter()
                .filter(|incident| {
                    !incident.status.is_open()
                        && local_date(incident.started_at, &context.zone) == day
                })
                .collect();
            (day, incidents)
        })
        .collect();
    html! {
        section aria-labelledby="past" {
            h2 #past { "Past incidents" }
            @for (day, incidents) in &days {
                section {
                    h3 { time datetime=(day) { (human_date(*day)) } }
                    @if incidents.is_empty() {
                        p.none { "No incidents reported." }
                    } @else {
                        ul.plain {
                            @for incident in incidents {
                                li { (incident_card(context, incident, Heading::H4, Updates::Latest)) }
                            }
                        }
                    }
                }
            }
            p { a href="/status/history" { "Incident history" } }
        }
    }
}

fn incident_page(context: &Context<'_>, incident: &IncidentView) -> Markup {
    let tone = impact_tone(incident.impact);
    let content = html! {
        p { a href="/status" { "← Current status" } }
        article {
            h1 { (incident.name) }
            dl.facts {
                dt { "Impact" }
                dd { span class={ "st " (tone) } { (impact_label(incident.impact)) } }
                dt { "Status" }
                dd { (incident.status.label()) }
                dt { "Started" }
                dd { (time(context, incident.started_at)) }
                @if let Some(monitoring_at) = incident.monitoring_at {
                    dt { "Monitoring since" }
                    dd { (time(context, monitoring_at)) }
                }
                @if let Some(resolved_at) = incident.resolved_at {
                    dt { "Resolved" }
                    dd { (time(context, resolved_at)) }
                }
                dt { "Affected components" }
                dd {
                    @if incident.components.is_empty() {
                        "None"
                    } @else {
                        (component_names(context, &incident.components))
                    }
                }
            }
            h2 { "Updates" }
            ol.updates {
                @for update in &incident.updates {
                    li id=(update_anchor(&update.id)) { (update_item(context, update)) }
                }
            }
        }
    };
    let mut title = incident.name.clone();
    title.push_str(" · ");
    title.push_str(&context.view.page.title);
    layout(context, &title, Brand::Link, content)
}

fn maintenance_page(context: &Context<'_>, maintenance: &MaintenanceView) -> Markup {
    let content = html! {
        p { a href="/status" { "← Current status" } }
        article {
            h1 { (maintenance.name) }
            dl.facts {
                dt { "Status" }
                dd { span.st.maint { (maintenance.status.label()) } }
                dt { "Scheduled" }
                dd { (time_range(context, maintenance)) }
                dt { "Components" }
                dd {
                    @if maintenance.components.is_empty() {
                        "None"
                    } @else {
                        (component_names(context, &maintenance.components))
                    }
                }
            }
            h2 { "Details" }
            p.body id=(update_anchor(&crate::json::maintenance_update_id(&maintenance.id))) {
                (maintenance.body)
            }
        }
    };
    let mut title = maintenance.name.clone();
    title.push_str(" · ");
    title.push_str(&context.view.page.title);
    layout(context, &title, Brand::Link, content)
}

/// One entry of the history: an incident, or a maintenance window that has begun.
enum HistoryItem<'a> {
    Incident(&'a IncidentView),
    Maintenance(&'a MaintenanceView),
}

impl HistoryItem<'_> {
    fn started_at(&self) -> Timestamp {
        match self {
            HistoryItem::Incident(incident) => incident.started_at,
            HistoryItem::Maintenance(maintenance) => maintenance.scheduled_for,
        }
    }
}

/// Every month of `history_days`, newest first, with what began in it and every update.
fn history_page(context: &Context<'_>) -> Markup {
    let view = context.view;
    let as_of = view.data_as_of;
    let since = as_of
        .checked_sub(SignedDuration::from_hours(
            24 * i64::from(view.page.history_days),
        ))
        .unwrap_or(Timestamp::MIN);
    let window = since..as_of;
    let mut items: Vec<HistoryItem<'_>> = view
        .incidents
        .iter()
        .filter(|incident| in_window(&window, incident.started_at))
        .map(HistoryItem::Incident)
        .chain(
            view.maintenances
                .iter()
                .filter(|maintenance| in_window(&window, maintenance.scheduled_for))
                .map(HistoryItem::Maintenance),
        )
        .collect();
    items.sort_by_key(|item| std::cmp::Reverse(item.started_at()));

    let first_month = local_date(since, &context.zone).first_of_month();
    let mut months = Vec::new();
    let mut month = local_date(as_of, &context.zone).first_of_month();
    while month >= first_month {
        months.push(month);
        match month.checked_sub(1.month()) {
            Ok(previous) => month = previous,
            Err(_) => break,
        }
    }
    let content = html! {
        p { a href="/status" { "← Current status" } }
        h1 { "Incident history" }
        p.muted {
            "Incidents and maintenance of the last " (view.page.history_days) " days, newest first."
        }
        @for month in &months {
            section {
                h2 { (month.strftime("%B %Y")) }
                @let in_month: Vec<&HistoryItem<'_>> = items
                    .iter()
                    .filter(|item| local_date(item.started_at(), &context.zone).first_of_month() == *month)
                    .collect();
                @if in_month.is_empty() {
                    p.none { "No incidents reported." }
                } @else {
                    ul.plain {
                        @for item in in_month {
                            li {
                                @match item {
                                    HistoryItem::Incident(incident) => {
                                        (incident_card(context, incident, Heading::H3, Updates::All))
                                    }
                                    HistoryItem::Maintenance(maintenance) => {
                                        (maintenance_card(context, maintenance))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let mut title = String::from("Incident history · ");
    title.push_str(&view.page.title);
    layout(context, &title, Brand::Link, content)
}

/// Inclusive of both ends: an incident that starts as the data is read still belongs.
fn in_window(window: &Range<Timestamp>, timestamp: Timestamp) -> bool {
    window.start <= timestamp && timestamp <= window.end
}

fn time(context: &Context<'_>, timestamp: Timestamp) -> Markup {
    html! {
        time datetime=(rfc3339(timestamp)) { (human_time(timestamp, &context.zone)) }
    }
}

fn time_range(context: &Context<'_>, maintenance: &MaintenanceView) -> Markup {
    html! {
        (time(context, maintenance.scheduled_for)) " – " (time(context, maintenance.scheduled_until))
    }
}

fn component_names(context: &Context<'_>, ids: &[String]) -> String {
    let names: Vec<&str> = ids.iter().map(|id| context.component_name(id)).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::model::{ComponentStatus, StatusView};
    use crate::{fixture, render, Snapshot};

    fn page(snapshot: &Snapshot, path: &str) -> String {
        let asset = snapshot
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing"));
        String::from_utf8(asset.identity.to_vec()).unwrap()
    }

    fn html_paths(snapshot: &Snapshot) -> Vec<String> {
        snapshot
            .paths()
            .filter(|path| snapshot.get(path).unwrap().content_type == crate::asset::HTML)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn status_page_states_the_formula_the_banner_and_one_rect_per_day() {
        let view = fixture::view(6, 90, 3, 2);
        let snapshot = render(&view);
        let html = page(&snapshot, "/status");
        assert!(html.starts_with("<!DOCTYPE html><html lang=\"en\">"));
        assert!(html.contains(UPTIME_FORMULA));
        assert!(html.contains(&context_banner(&view)));
        assert_eq!(html.matches("<rect ").count(), 6 * 90);
        assert_eq!(html.matches("<title>").count(), 1 + 6 * 90);
        assert_eq!(html.matches("<svg ").count(), 6);
        assert!(html
            .contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
        assert!(html.contains(
            "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"Example status · updates\" href=\"/status/feed.atom\">"
        ));
        assert!(html.contains("viewBox=\"0 0 900 30\""));
        assert!(html.contains("aria-label=\"Component 0: 90-day uptime "));
        assert!(html.contains("<title>5 Dec 2026: 100% uptime</title>"));
        assert!(html.contains("<title>9 Sep 2026: no data</title>"));
        assert!(html.contains("; incidents: Incident 0</title>"));
        assert!(html.contains("<a href=\"/status/incidents/inc0\"><title>"));
        assert!(html.contains("<h3>Group 0</h3>"));
        assert!(html.contains("<h4>Component 1</h4>"));
        assert!(html.contains("Active incidents"));
        assert!(html.contains("Scheduled maintenance"));
        assert!(html.contains("Past incidents"));
        assert!(html.contains("No incidents reported."));
        assert!(html.contains("href=\"/status/history\""));
        assert!(html.contains("href=\"/api/v2/summary.json\""));
        assert!(html.contains(
            "Updated <time datetime=\"2026-12-05T12:00:00Z\">5 Dec 2026, 12:00 UTC</time>"
        ));
    }

    fn context_banner(view: &StatusView) -> String {
        crate::status::Overall::of(view).banner.to_owned()
    }

    #[test]
    fn banner_says_the_worst_status_in_words_and_colour() {
        let mut view = fixture::view(3, 5, 0, 0);
        view.maintenances.clear();
        let html = page(&render(&view), "/status");
        assert!(html.contains("<section class=\"banner ok\" aria-labelledby=\"overall\"><h2 id=\"overall\"><span class=\"icon\" aria-hidden=\"true\">✓</span>All systems operational</h2>"));
        view.components[2].status = ComponentStatus::MajorOutage;
        view.components[1].status = ComponentStatus::DegradedPerformance;
        let html = page(&render(&view), "/status");
        assert!(html.contains("class=\"banner crit\""));
        assert!(html.contains("Major outage</h2>"));
        assert!(html.contains("<span class=\"st crit\"><span class=\"icon\" aria-hidden=\"true\">✕</span>Major outage</span>"));
        assert!(html.contains("Degraded performance</span>"));
    }

    #[test]
    fn pages_use_no_script_and_keep_line_breaks() {
        let snapshot = render(&fixture::view(3, 10, 2, 2));
        for path in html_paths(&snapshot) {
            let html = page(&snapshot, &path);
            assert!(!html.contains("<script"), "{path}");
            assert!(!html.contains(" onclick="), "{path}");
            assert!(html.contains("<main class=\"wrap\" id=\"main\">"), "{path}");
            assert!(html.contains("<footer"), "{path}");
            assert!(html.contains("prefers-color-scheme:dark"), "{path}");
            assert!(html.contains(":focus-visible{outline:"), "{path}");
        }
        let html = page(&snapshot, "/status/incidents/inc0");
        assert!(html.contains("<p class=\"body\">Update 1 of incident 0.\nSecond line.</p>"));
        assert!(STYLE.contains(".body{white-space:pre-line"));
    }

    #[test]
    fn every_incident_has_a_page_with_all_its_updates() {
        let view = fixture::view(3, 10, 4, 3);
        let snapshot = render(&view);
        for incident in &view.incidents {
            let html = page(&snapshot, &incident_path(&incident.id));
            assert!(html.contains(&format!("<h1>{}</h1>", incident.name)));
            assert!(html.contains("<a href=\"/status\">← Current status</a>"));
            assert!(html
                .contains("<dt>Impact</dt><dd><span class=\"st minor\">Minor impact</span></dd>"));
            assert!(html.contains("<dt>Started</dt>"));
            assert_eq!(
                incident.resolved_at.is_some(),
                html.contains("<dt>Resolved</dt>")
            );
            assert!(html.contains("<dt>Affected components</dt><dd>Component 0</dd>"));
            for update in &incident.updates {
                assert!(html.contains(&format!("<li id=\"update-{}\">", update.id)));
                assert!(html.contains(&update.body));
            }
            assert!(html.contains("<li>Component 0: Operational → Partial outage</li>"));
        }
        for maintenance in &view.maintenances {
            let html = page(&snapshot, &maintenance_path(&maintenance.id));
            assert!(html.contains(&maintenance.body));
        }
    }

    #[test]
    fn history_lists_every_month_newest_first_with_every_update() {
        let view = fixture::view(2, 90, 6, 3);
        let html = page(&render(&view), "/status/history");
        let months = [
            "December 2026",
            "November 2026",
            "October 2026",
            "September 2026",
        ];
        let positions: Vec<usize> = months
            .iter()
            .map(|month| {
                html.find(&format!("<h2>{month}</h2>"))
                    .unwrap_or_else(|| panic!("{month}"))
            })
            .collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(!html.contains("August 2026"));
        for incident in &view.incidents {
            for update in &incident.updates {
                assert!(html.contains(&update.body), "{}", update.id);
            }
        }
        // Maintenance that has begun is history; the future window is not yet.
        assert!(html.contains("Maintenance m0"));
        assert!(html.contains("Maintenance m1"));
        assert!(!html.contains("Maintenance m2"));
        assert!(html.contains("No incidents reported."));
    }

    #[test]
    fn logo_carries_the_title_as_its_text() {
        let mut view = fixture::view(1, 3, 0, 0);
        view.page.logo_url = Some("https://example.com/logo.png?a=1&b=2".to_owned());
        let html = page(&render(&view), "/status");
        assert!(html.contains(
            "<h1 class=\"brand\"><img src=\"https://example.com/logo.png?a=1&amp;b=2\" alt=\"Example status\"></h1>"
        ));
        let html = page(&render(&view), "/status/history");
        assert!(html.contains("<p class=\"brand\"><a href=\"/status\"><img "));
    }

    #[test]
    fn an_unknown_time_zone_shows_utc() {
        let mut view = fixture::view(1, 3, 0, 0);
        view.page.time_zone = "Mars/Olympus_Mons".to_owned();
        let html = page(&render(&view), "/status");
        assert!(html.contains("12:00 UTC</time>. Times are in UTC."));
    }

    #[test]
    fn markup_in_any_text_is_escaped_everywhere() {
        const ATTACK: &str = "<script>alert(1)</script>";
        let mut view = fixture::view(4, 10, 2, 2);
        view.page.title = ATTACK.to_owned();
        view.page.links = vec![(ATTACK.to_owned(), "\"><script>alert(1)</script>".to_owned())];
        view.components[0].name = ATTACK.to_owned();
        view.components[0].description = Some(ATTACK.to_owned());
        view.components[1].group = Some(ATTACK.to_owned());
        view.components[2].days[3].incidents = vec![(ATTACK.to_owned(), ATTACK.to_owned())];
        view.incidents[0].name = ATTACK.to_owned();
        view.incidents[0].updates[0].body = ATTACK.to_owned();
        view.incidents[0].updates[0].status = ATTACK.to_owned();
        view.incidents[1].updates[1].affected[0].name = ATTACK.to_owned();
        view.maintenances[1].name = ATTACK.to_owned();
        view.maintenances[1].body = ATTACK.to_owned();
        let snapshot = render(&view);
        let mut checked = 0;
        for path in snapshot.paths() {
            let asset = snapshot.get(path).unwrap();
            if asset.content_type == crate::asset::JSON {
                continue;
            }
            let text = String::from_utf8(asset.identity.to_vec()).unwrap();
            assert!(!text.contains("<script"), "raw markup in {path}");
            assert!(
                text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                "{path}"
            );
            checked += 1;
        }
        assert_eq!(checked, 2 + 2 + 3 + 1);
        let html = page(&snapshot, "/status");
        assert!(html.contains("href=\"&quot;&gt;&lt;script&gt;"));
        crate::feed::tests::assert_well_formed_xml(&page(&snapshot, "/status/feed.atom"));
    }

    /// A busy page with varied text, so that compression has no unrealistic repetition to feed on.
    fn busy_view() -> StatusView {
        let mut view = fixture::view(20, 90, 10, 5);
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (index, component) in view.components.iter_mut().enumerate() {
            component.name = format!("Service {index} ({:x})", next() % 0xffff_ffff);
            component.description = Some(format!(
                "Handles part {index} of the product, region {:x}",
                next()
            ));
            for day in &mut component.days {
                day.up = (next() % 2000) as i64;
                day.degraded = (next() % 20) as i64;
                day.down = (next() % 4) as i64 * (next() % 30) as i64;
            }
        }
        for incident in &mut view.incidents {
            for update in &mut incident.updates {
                let words: Vec<String> =
                    (0..40).map(|_| format!("{:x}", next() % 0xfffff)).collect();
                update.body = words.join(" ");
            }
        }
        view
    }

    #[test]
    fn a_busy_status_page_transfers_well_under_sixty_kilobytes() {
        let snapshot = render(&busy_view());
        let asset = snapshot.get("/status").unwrap();
        // Each of the 1 800 days carries a focusable title, so the markup itself is larger than
        // 60 KB; what travels is compressed.
        assert!(asset.gzip.len() < 60 * 1024, "gzip {}", asset.gzip.len());
        assert!(
            asset.brotli.len() < 60 * 1024,
            "brotli {}",
            asset.brotli.len()
        );
        assert!(
            asset.identity.len() < 400 * 1024,
            "identity {}",
            asset.identity.len()
        );
        let mut report = std::io::stderr();
        writeln!(
            report,
            "/status: {} bytes, gzip {}, brotli {}",
            asset.identity.len(),
            asset.gzip.len(),
            asset.brotli.len()
        )
        .unwrap();
    }

    /// WCAG 2 contrast of the text colours against the backgrounds they are drawn on, in both
    /// schemes, read from the stylesheet itself so that an edit cannot drift below AA.
    #[test]
    fn text_colours_meet_aa_contrast_in_light_and_dark() {
        let (light, dark) = STYLE
            .split_once("@media (prefers-color-scheme:dark)")
            .unwrap();
        let light = variables(light);
        let mut dark_variables = light.clone();
        dark_variables.extend(variables(dark));
        for (scheme, colours) in [("light", &light), ("dark", &dark_variables)] {
            let colour = |name: &str| {
                colours
                    .iter()
                    .find(|(variable, _)| variable == name)
                    .map(|(_, value)| value.clone())
                    .unwrap_or_else(|| panic!("--{name} missing in {scheme}"))
            };
            let mut pairs = Vec::new();
            for background in ["bg", "panel"] {
                for text in [
                    "text", "muted", "link", "ok", "minor", "major", "crit", "maint",
                ] {
                    pairs.push((text, background));
                }
            }
            for banner in [
                "banner-ok",
                "banner-minor",
                "banner-major",
                "banner-crit",
                "banner-maint",
            ] {
                pairs.push(("on-banner", banner));
            }
            for (text, background) in pairs {
                let ratio = contrast(&colour(text), &colour(background));
                assert!(
                    ratio >= 4.5,
                    "{scheme}: --{text} on --{background} is {ratio:.2}:1"
                );
            }
        }
    }

    fn variables(css: &str) -> Vec<(String, String)> {
        css.split("--")
            .skip(1)
            .filter_map(|declaration| {
                let (name, rest) = declaration.split_once(':')?;
                let value = rest.split([';', '}']).next()?.trim();
                value
                    .starts_with('#')
                    .then(|| (name.to_owned(), value.to_owned()))
            })
            .collect()
    }

    fn contrast(first: &str, second: &str) -> f64 {
        let luminance = |hex: &str| {
            let channel = |offset: usize| {
                let value =
                    f64::from(u8::from_str_radix(&hex[1 + offset..3 + offset], 16).unwrap())
                        / 255.0;
                if value <= 0.039_28 {
                    value / 12.92
                } else {
                    ((value + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4)
        };
        let (a, b) = (luminance(first), luminance(second));
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }
}
