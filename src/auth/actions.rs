//! The three things a caller may do in a repository.

use std::fmt;

/// A set of repository actions: pull, push, delete.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);
    pub const PULL: Actions = Actions(1);
    pub const PUSH: Actions = Actions(2);
    pub const DELETE: Actions = Actions(4);
    pub const ALL: Actions = Actions(7);

    const NAMES: [(Actions, &'static str); 3] = [
        (Actions::PULL, "pull"),
        (Actions::PUSH, "push"),
        (Actions::DELETE, "delete"),
    ];

    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    pub fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    /// One action by name; `*` is all of them. Unknown names are `None`.
    pub fn parse_one(name: &str) -> Option<Actions> {
        if name == "*" {
            return Some(Actions::ALL);
        }
        Actions::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(a, _)| *a)
    }

    /// A list such as `pull,push`. Unknown names are skipped: a token scope
    /// may carry actions berth does not know, and they grant nothing.
    pub fn parse_list<'a>(names: impl IntoIterator<Item = &'a str>) -> Actions {
        names
            .into_iter()
            .filter_map(|n| Actions::parse_one(n.trim()))
            .fold(Actions::NONE, Actions::union)
    }

    /// The names of the actions in the set, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        Actions::NAMES
            .iter()
            .filter(|(a, _)| self.contains(*a))
            .map(|(_, n)| *n)
            .collect()
    }
}

impl fmt::Debug for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.names().join(","))
    }
}

impl fmt::Display for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        assert_eq!(
            Actions::parse_list("pull,push".split(',')),
            Actions::PULL.union(Actions::PUSH)
        );
        assert_eq!(Actions::parse_list(["*"]), Actions::ALL);
        assert_eq!(Actions::parse_list(["push", "mystery"]), Actions::PUSH);
        assert_eq!(Actions::ALL.to_string(), "pull,push,delete");
        assert!(Actions::ALL.contains(Actions::DELETE));
        assert!(!Actions::PULL.contains(Actions::PUSH));
        assert!(Actions::NONE.is_empty());
        assert_eq!(Actions::ALL.intersect(Actions::PUSH), Actions::PUSH);
    }
}
