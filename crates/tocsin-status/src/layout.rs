//! The order components are shown in: the config's order, with each group placed where its
//! first member appears. The page and `components.json` both follow it.

use std::collections::{BTreeSet, HashMap};

use crate::model::{ComponentStatus, ComponentView};

pub(crate) enum Entry<'a> {
    Single(&'a ComponentView),
    Group(Group<'a>),
}

pub(crate) struct Group<'a> {
    /// Stable across rebuilds and restarts since it comes from the name; Statuspage clients
    /// use it as the children's `group_id`.
    pub(crate) id: String,
    pub(crate) name: &'a str,
    pub(crate) members: Vec<&'a ComponentView>,
}

impl Group<'_> {
    /// A group is as bad as its worst member.
    pub(crate) fn status(&self) -> ComponentStatus {
        self.members
            .iter()
            .map(|member| member.status)
            .max()
            .unwrap_or(ComponentStatus::Operational)
    }
}

pub(crate) fn entries(components: &[ComponentView]) -> Vec<Entry<'_>> {
    let mut taken: BTreeSet<String> = components
        .iter()
        .map(|component| component.id.clone())
        .collect();
    let mut entries = Vec::new();
    let mut group_entry: HashMap<&str, usize> = HashMap::new();
    for component in components {
        let Some(name) = component.group.as_deref() else {
            entries.push(Entry::Single(component));
            continue;
        };
        if let Some(&index) = group_entry.get(name) {
            if let Entry::Group(group) = &mut entries[index] {
                group.members.push(component);
            }
            continue;
        }
        let id = unique_group_id(name, &mut taken);
        group_entry.insert(name, entries.len());
        entries.push(Entry::Group(Group {
            id,
            name,
            members: vec![component],
        }));
    }
    entries
}

/// "group-" and the name's slug; a suffix keeps it apart from component ids and from groups
/// whose names slug alike.
fn unique_group_id(name: &str, taken: &mut BTreeSet<String>) -> String {
    let mut slug = String::new();
    for character in name.chars() {
        if character.is_ascii_alphanumeric() {
            slug.push(character.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() {
        slug.push_str("unnamed");
    }
    let base = format!("group-{slug}");
    let mut id = base.clone();
    let mut suffix = 2;
    while taken.contains(&id) {
        id = format!("{base}-{suffix}");
        suffix += 1;
    }
    taken.insert(id.clone());
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn groups_sit_where_their_first_member_appears() {
        let mut view = fixture::view(4, 1, 0, 0);
        view.components[0].group = None;
        view.components[1].group = Some("Core API".into());
        view.components[2].group = None;
        view.components[3].group = Some("Core API".into());
        let entries = entries(&view.components);
        assert_eq!(entries.len(), 3);
        match &entries[1] {
            Entry::Group(group) => {
                assert_eq!(group.id, "group-core-api");
                let ids: Vec<&str> = group.members.iter().map(|c| c.id.as_str()).collect();
                assert_eq!(ids, ["c1", "c3"]);
            }
            Entry::Single(_) => panic!("expected a group"),
        }
    }

    #[test]
    fn group_ids_are_unique() {
        let mut view = fixture::view(3, 1, 0, 0);
        view.components[0].group = Some("A B".into());
        view.components[1].group = Some("a-b".into());
        view.components[2].group = Some("¿?".into());
        let ids: Vec<String> = entries(&view.components)
            .into_iter()
            .filter_map(|entry| match entry {
                Entry::Group(group) => Some(group.id),
                Entry::Single(_) => None,
            })
            .collect();
        assert_eq!(ids, ["group-a-b", "group-a-b-2", "group-unnamed"]);
    }
}
