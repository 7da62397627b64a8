//! `docs/settings.md` names every setting the code knows, and no other.

use std::collections::BTreeSet;
use std::path::Path;

/// The settings the doc's tables name: the key and the variable of every row whose
/// first cell is a key in backticks (header and separator rows have none).
fn documented() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/settings.md");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix('|')?.split('|').map(str::trim);
            let key = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let variable = cells.next()?.trim_matches('`');
            Some((key.to_owned(), variable.to_owned()))
        })
        .collect()
}

#[test]
fn the_settings_doc_names_every_setting_and_no_other() {
    let rows = documented();
    for (key, variable) in &rows {
        assert_eq!(
            *variable,
            ramp::config::env_name(key),
            "the doc gives `{key}` the wrong variable"
        );
    }
    let documented: BTreeSet<String> = rows.into_iter().map(|(_, variable)| variable).collect();
    let known: BTreeSet<String> = ramp::config::keys()
        .into_iter()
        .map(ramp::config::env_name)
        .collect();

    let missing: Vec<_> = known.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&known).collect();
    assert!(
        missing.is_empty(),
        "settings missing from docs/settings.md: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "docs/settings.md names what is no setting: {unknown:?}"
    );
}
