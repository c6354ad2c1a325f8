//! The dashboard's pages, from one registry: every kind of page, the URL of each page, the
//! parameter values the tests must cover, and the dispatch from a page and its query results to
//! its model and HTML. The Worker only runs the page's [`crate::plan::plan`] and calls
//! [`render`].
//!
//! Adding a page: a variant of [`Page`] (its route in [`crate::route::route`]), a kind in the
//! `page_kinds!` list below. The compiler then asks for everything else, because every
//! dispatch is an exhaustive `match`: its kind ([`Page::kind`]), URL ([`Page::url`]), examples
//! ([`PageKind::examples`]), plan ([`crate::plan::plan`]) and renderer ([`render`]). The plan
//! tests, the SQL tests (native SQLite and the Analytics Engine fake), the escaping test and the
//! browser test enumerate [`PageKind::ALL`], so no page skips their checks: a page whose plan is
//! empty, whose URL does not route back to it, or whose HTML escapes nothing fails them.

use crate::html::{self, Footer};
use crate::model;
use crate::plan::Results;
use crate::queries::ErrorSort;
use crate::range::Range;
use crate::route::{encode, Page};

/// Declares [`PageKind`] and [`PageKind::ALL`] from one list, so no kind can be left out of it.
macro_rules! page_kinds {
    ($($(#[$doc:meta])* $kind:ident),+ $(,)?) => {
        /// A kind of dashboard page (a [`Page`] without its parameters).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum PageKind {
            $($(#[$doc])* $kind,)+
        }

        impl PageKind {
            /// Every kind, in the order of the navigation.
            pub const ALL: &'static [PageKind] = &[$(PageKind::$kind,)+];
        }
    };
}

page_kinds! {
    /// `/`: charts and tables over a range.
    Overview,
    /// `/errors`: the error groups.
    Errors,
    /// `/errors/<fingerprint>`: one error group.
    ErrorGroup,
    /// `/pipeline`: the pipeline's health.
    Pipeline,
}

/// A release name that tries everything: SQL, markup and URL syntax.
pub const HOSTILE_RELEASE: &str = "'; DROP TABLE error_groups; --<script>&\"";

/// The bot filters every kind of page is tested with: every bot, and one.
pub const EXAMPLE_BOTS: [Option<&str>; 2] = [None, Some("minimal-bot")];

impl PageKind {
    /// Pages of this kind with every parameter value the tests must cover: each range, each
    /// sort, no release, a plain one and a hostile one, and each of [`EXAMPLE_BOTS`].
    pub fn examples(self) -> Vec<Page> {
        let fingerprint = || "0123456789abcdef".to_string();
        let mut pages = Vec::new();
        for bot in EXAMPLE_BOTS.map(|b| b.map(str::to_string)) {
            match self {
                PageKind::Overview => pages.extend(Range::ALL.map(|range| Page::Overview {
                    range,
                    bot: bot.clone(),
                })),
                PageKind::Pipeline => pages.extend(Range::ALL.map(|range| Page::Pipeline {
                    range,
                    bot: bot.clone(),
                })),
                PageKind::ErrorGroup => pages.extend(Range::ALL.map(|range| Page::ErrorGroup {
                    fingerprint: fingerprint(),
                    range,
                    bot: bot.clone(),
                })),
                PageKind::Errors => {
                    let releases = [None, Some("0.1.0"), Some(HOSTILE_RELEASE)];
                    for sort in [ErrorSort::LastSeen, ErrorSort::Count] {
                        pages.extend(releases.map(|release| Page::Errors {
                            sort,
                            release: release.map(str::to_string),
                            bot: bot.clone(),
                        }));
                    }
                }
            }
        }
        pages
    }

    /// Its name, for test reports and screenshots.
    pub fn name(self) -> &'static str {
        match self {
            PageKind::Overview => "overview",
            PageKind::Errors => "errors",
            PageKind::ErrorGroup => "group",
            PageKind::Pipeline => "pipeline",
        }
    }
}

/// `&bot=<name>` for a bot filter, nothing for every bot.
pub fn bot_param(bot: Option<&str>) -> String {
    bot.map(|b| format!("&bot={}", encode(b)))
        .unwrap_or_default()
}

impl Page {
    /// Its kind.
    pub fn kind(&self) -> PageKind {
        match self {
            Page::Overview { .. } => PageKind::Overview,
            Page::Errors { .. } => PageKind::Errors,
            Page::ErrorGroup { .. } => PageKind::ErrorGroup,
            Page::Pipeline { .. } => PageKind::Pipeline,
        }
    }

    /// Its bot filter.
    pub fn bot(&self) -> Option<&str> {
        match self {
            Page::Overview { bot, .. }
            | Page::Errors { bot, .. }
            | Page::ErrorGroup { bot, .. }
            | Page::Pipeline { bot, .. } => bot.as_deref(),
        }
    }

    /// Its URL (path and query), which routes back to this very page.
    pub fn url(&self) -> String {
        let bot = bot_param(self.bot());
        match self {
            Page::Overview { range, .. } => format!("/?range={}{bot}", range.as_param()),
            Page::Pipeline { range, .. } => format!("/pipeline?range={}{bot}", range.as_param()),
            Page::ErrorGroup {
                fingerprint, range, ..
            } => {
                format!("/errors/{fingerprint}?range={}{bot}", range.as_param())
            }
            Page::Errors { sort, release, .. } => {
                let release = release
                    .as_deref()
                    .map(|r| format!("&release={}", encode(r)))
                    .unwrap_or_default();
                format!("/errors?sort={}{release}{bot}", sort.as_param())
            }
        }
    }
}

/// The page's HTML from the results of its plan, as of `now_ms`.
pub fn render(page: &Page, now_ms: i64, results: &Results, footer: &Footer) -> String {
    let bot = page.bot().map(str::to_string);
    match page {
        Page::Overview { range, .. } => {
            html::overview(&model::overview(*range, bot, now_ms, results), footer)
        }
        Page::Errors { sort, release, .. } => {
            html::errors(&model::errors(*sort, release.clone(), bot, results), footer)
        }
        Page::ErrorGroup {
            fingerprint, range, ..
        } => html::group(
            &model::group(fingerprint, *range, bot, now_ms, results),
            footer,
        ),
        Page::Pipeline { range, .. } => {
            html::pipeline(&model::pipeline(*range, bot, now_ms, results), footer)
        }
    }
}

/// Every example page of every kind.
pub fn every_example() -> impl Iterator<Item = Page> {
    PageKind::ALL.iter().flat_map(|kind| kind.examples())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{route, Route};

    #[test]
    fn every_kind_has_examples_of_its_own_kind_whose_urls_route_back() {
        for kind in PageKind::ALL {
            let examples = kind.examples();
            assert!(!examples.is_empty(), "{kind:?} has no examples");
            for page in examples {
                assert_eq!(page.kind(), *kind);
                let url = page.url();
                let (path, query) = url.split_once('?').unwrap_or((&url, ""));
                assert_eq!(
                    route("GET", path, query),
                    Route::Page(page.clone()),
                    "{url}"
                );
            }
        }
    }

    #[test]
    fn kinds_are_listed_once_with_distinct_names() {
        let mut names: Vec<&str> = PageKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PageKind::ALL.len());
    }
}
