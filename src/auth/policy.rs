//! Per-repository permissions.
//!
//! A policy names a repository pattern and grants actions to anonymous
//! callers, to every logged-in user, to named users and to groups. For a
//! repository, the **most specific** matching pattern alone decides:
//!
//! 1. the pattern with the most literal (non-wildcard) characters wins (a
//!    `**` component and the `/` beside it count none);
//! 2. on a tie, the one with fewer wildcards;
//! 3. on a tie still, the one written first.
//!
//! So `team-a/secret` beats `team-a/*`, which beats `team-a/**`, which beats
//! `**`. Grants do not add up across patterns: a more specific policy can
//! take rights away. Admins may do everything everywhere. A logged-in user
//! has at least the anonymous grants of the deciding policy.
//!
//! Patterns match whole names, component by component: `*` matches within
//! one component (no `/`), `?` one character, and a `**` component any
//! number of components, none included (`team-a/**` matches `team-a` too).

use super::Actions;
use crate::config::AuthConfig;
use std::collections::{HashMap, HashSet};

/// A repository name pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    parts: Vec<String>,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let text = text.trim();
        if text.is_empty() || text.starts_with('/') || text.ends_with('/') || text.contains("//") {
            return Err(format!("repository pattern {text:?} is not a name pattern"));
        }
        let parts: Vec<String> = text.split('/').map(str::to_owned).collect();
        if let Some(p) = parts
            .iter()
            .find(|p| p.contains("**") && p.as_str() != "**")
        {
            return Err(format!(
                "repository pattern {text:?}: `**` must be a whole component, not {p:?}"
            ));
        }
        Ok(Pattern {
            text: text.to_owned(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<&str> = name.split('/').collect();
        let parts: Vec<&str> = self.parts.iter().map(String::as_str).collect();
        match_parts(&parts, &name)
    }

    /// (literal characters, -wildcards): larger is more specific. The
    /// literal characters are those a matching name must have: a `**`
    /// component and the `/` beside it pin nothing down (`team-a/**`
    /// matches `team-a` itself), so they do not count.
    fn specificity(&self) -> (usize, isize) {
        let wild = |c: char| c == '*' || c == '?';
        let in_parts: usize = self
            .parts
            .iter()
            .filter(|p| p.as_str() != "**")
            .map(|p| p.chars().filter(|c| !wild(*c)).count())
            .sum();
        let separators = self
            .parts
            .windows(2)
            .filter(|w| w[0] != "**" && w[1] != "**")
            .count();
        let literal = in_parts + separators;
        let wildcards = self
            .parts
            .iter()
            .map(|p| {
                if p == "**" {
                    1
                } else {
                    p.chars().filter(|c| wild(*c)).count()
                }
            })
            .sum::<usize>();
        (literal, -(wildcards as isize))
    }
}

fn match_parts(pat: &[&str], name: &[&str]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some((&"**", rest)) => (0..=name.len()).any(|skip| match_parts(rest, &name[skip..])),
        Some((p, rest)) => match name.split_first() {
            Some((n, name_rest)) => {
                match_component(p.as_bytes(), n.as_bytes()) && match_parts(rest, name_rest)
            }
            None => false,
        },
    }
}

/// `*` and `?` within one component (iterative, linear backtracking).
fn match_component(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// One `[[auth.policy]]` entry, resolved.
#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    anonymous: Actions,
    authenticated: Actions,
    users: HashMap<String, Actions>,
    groups: HashMap<String, Actions>,
}

/// The policies, admins and group memberships of the config.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Most specific first.
    rules: Vec<Rule>,
    admins: HashSet<String>,
    /// user -> groups
    member_of: HashMap<String, Vec<String>>,
}

fn actions_of(list: &[String], context: &str) -> Result<Actions, String> {
    list.iter().try_fold(Actions::NONE, |acc, name| {
        Actions::parse_one(name)
            .map(|a| acc.union(a))
            .ok_or_else(|| {
                format!("{context}: unknown action {name:?} (use pull, push, delete or *)")
            })
    })
}

impl Policy {
    pub fn from_config(config: &AuthConfig) -> Result<Policy, String> {
        let mut rules = Vec::new();
        for (i, p) in config.policy.iter().enumerate() {
            let pattern = Pattern::parse(&p.repositories)?;
            let ctx = format!("auth.policy {:?}", pattern.as_str());
            let map = |m: &std::collections::BTreeMap<String, Vec<String>>, what: &str| {
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), actions_of(v, &format!("{ctx} {what} {k:?}"))?)))
                    .collect::<Result<HashMap<_, _>, String>>()
            };
            for g in p.groups.keys() {
                if !config.groups.contains_key(g) {
                    return Err(format!(
                        "{ctx}: group {g:?} is not defined in [auth.groups]"
                    ));
                }
            }
            rules.push((
                i,
                Rule {
                    anonymous: actions_of(&p.anonymous, &format!("{ctx} anonymous"))?,
                    authenticated: actions_of(&p.authenticated, &format!("{ctx} authenticated"))?,
                    users: map(&p.users, "user")?,
                    groups: map(&p.groups, "group")?,
                    pattern,
                },
            ));
        }
        // Most specific first; the first written wins a tie (stable sort).
        rules.sort_by(|(ia, a), (ib, b)| {
            b.pattern
                .specificity()
                .cmp(&a.pattern.specificity())
                .then(ia.cmp(ib))
        });
        let mut member_of: HashMap<String, Vec<String>> = HashMap::new();
        for (group, members) in &config.groups {
            for m in members {
                member_of.entry(m.clone()).or_default().push(group.clone());
            }
        }
        Ok(Policy {
            rules: rules.into_iter().map(|(_, r)| r).collect(),
            admins: config.admins.iter().cloned().collect(),
            member_of,
        })
    }

    /// The pattern that decides for `repo`, if any.
    pub fn deciding_pattern(&self, repo: &str) -> Option<&str> {
        self.rule_for(repo).map(|r| r.pattern.as_str())
    }

    fn rule_for(&self, repo: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.pattern.matches(repo))
    }

    /// What `user` (`None`: anonymous) may do in `repo`.
    pub fn actions(&self, user: Option<&str>, repo: &str) -> Actions {
        if user.is_some_and(|u| self.admins.contains(u)) {
            return Actions::ALL;
        }
        let Some(rule) = self.rule_for(repo) else {
            return Actions::NONE;
        };
        let mut a = rule.anonymous;
        if let Some(u) = user {
            a = a.union(rule.authenticated);
            if let Some(x) = rule.users.get(u) {
                a = a.union(*x);
            }
            for g in self.member_of.get(u).into_iter().flatten() {
                if let Some(x) = rule.groups.get(g) {
                    a = a.union(*x);
                }
            }
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PolicyRule;

    #[test]
    fn patterns_match_by_component() {
        let p = |s| Pattern::parse(s).unwrap();
        assert!(p("team-a/**").matches("team-a"));
        assert!(p("team-a/**").matches("team-a/x"));
        assert!(p("team-a/**").matches("team-a/x/y"));
        assert!(!p("team-a/**").matches("team-ab/x"));
        assert!(p("team-a/*").matches("team-a/x"));
        assert!(!p("team-a/*").matches("team-a/x/y"));
        assert!(!p("team-a/*").matches("team-a"));
        assert!(p("**").matches("anything/at/all"));
        assert!(p("*/app").matches("x/app"));
        assert!(p("a/**/z").matches("a/z"));
        assert!(p("a/**/z").matches("a/b/c/z"));
        assert!(!p("a/**/z").matches("a/b/c"));
        assert!(p("lib-?").matches("lib-1"));
        assert!(!p("lib-?").matches("lib-12"));
        assert!(p("pre*fix*").matches("preXXfixYY"));
        assert!(p("exact/name").matches("exact/name"));
        assert!(!p("exact/name").matches("exact/name/more"));
        assert!(Pattern::parse("a/x**").is_err());
        assert!(Pattern::parse("/a").is_err());
        assert!(Pattern::parse("").is_err());
    }

    fn rule(repos: &str, f: impl FnOnce(&mut PolicyRule)) -> PolicyRule {
        let mut r = PolicyRule {
            repositories: repos.into(),
            ..Default::default()
        };
        f(&mut r);
        r
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn policy() -> Policy {
        let mut c = AuthConfig {
            admins: strs(&["root"]),
            ..AuthConfig::default()
        };
        c.groups.insert("team-a".into(), strs(&["alice", "bob"]));
        c.policy = vec![
            rule("**", |r| r.authenticated = strs(&["pull"])),
            rule("team-a/**", |r| {
                r.groups.insert("team-a".into(), strs(&["pull", "push"]));
                r.users.insert("alice".into(), strs(&["delete"]));
            }),
            rule("team-a/secret", |r| {
                r.users.insert("alice".into(), strs(&["*"]));
            }),
            rule("public/**", |r| {
                r.anonymous = strs(&["pull"]);
                r.users.insert("carol".into(), strs(&["push"]));
            }),
        ];
        Policy::from_config(&c).unwrap()
    }

    #[test]
    fn most_specific_pattern_decides() {
        let p = policy();
        let pp = Actions::PULL.union(Actions::PUSH);
        assert_eq!(p.actions(Some("alice"), "team-a/app"), Actions::ALL);
        assert_eq!(p.actions(Some("bob"), "team-a/app"), pp);
        // team-a/secret alone decides: bob's group grant does not reach it.
        assert_eq!(p.deciding_pattern("team-a/secret"), Some("team-a/secret"));
        assert_eq!(p.actions(Some("bob"), "team-a/secret"), Actions::NONE);
        assert_eq!(p.actions(Some("alice"), "team-a/secret"), Actions::ALL);
        // The catch-all lets every user pull elsewhere, anonymous nothing.
        assert_eq!(p.actions(Some("dave"), "misc/x"), Actions::PULL);
        assert_eq!(p.actions(None, "misc/x"), Actions::NONE);
        // Anonymous grants apply to users too.
        assert_eq!(p.actions(None, "public/web"), Actions::PULL);
        assert_eq!(p.actions(Some("carol"), "public/web"), pp);
        // Team-a's rule does not decide for team-a's neighbours; `**` does.
        assert_eq!(p.actions(Some("bob"), "team-ab/x"), Actions::PULL);
        assert_eq!(p.actions(Some("root"), "team-a/secret"), Actions::ALL);
    }

    /// An exact name beats a `**` pattern that also matches it, and a
    /// pattern with fewer `**` beats one with more, however the `/`s fall.
    #[test]
    fn exact_names_beat_double_star_neighbours() {
        let rules = [
            ("team-a/**", "bob"),
            ("team-a", "alice"),
            ("x/**/y", "bob"),
            ("x/y", "alice"),
            ("m/*", "alice"),
            ("m/**", "bob"),
        ];
        let c = AuthConfig {
            policy: rules
                .iter()
                .map(|(pattern, user)| {
                    rule(pattern, |r| {
                        r.users.insert(user.to_string(), strs(&["pull"]));
                    })
                })
                .collect(),
            ..AuthConfig::default()
        };
        let p = Policy::from_config(&c).unwrap();
        assert_eq!(p.deciding_pattern("team-a"), Some("team-a"));
        assert_eq!(p.actions(Some("alice"), "team-a"), Actions::PULL);
        assert_eq!(p.actions(Some("bob"), "team-a"), Actions::NONE);
        assert_eq!(p.deciding_pattern("team-a/app"), Some("team-a/**"));
        assert_eq!(p.deciding_pattern("x/y"), Some("x/y"));
        assert_eq!(p.deciding_pattern("x/z/y"), Some("x/**/y"));
        assert_eq!(p.deciding_pattern("m/app"), Some("m/*"));
        assert_eq!(p.deciding_pattern("m/a/b"), Some("m/**"));
    }

    #[test]
    fn config_errors_are_reported() {
        let mut c = AuthConfig {
            policy: vec![rule("x/**", |r| r.anonymous = strs(&["pul"]))],
            ..AuthConfig::default()
        };
        assert!(Policy::from_config(&c)
            .unwrap_err()
            .contains("unknown action"));
        c.policy = vec![rule("x/**", |r| {
            r.groups.insert("nope".into(), strs(&["pull"]));
        })];
        assert!(Policy::from_config(&c).unwrap_err().contains("not defined"));
    }

    /// The policy example in the README means what the README says.
    #[test]
    fn readme_example_holds() {
        let readme = include_str!("../../README.md");
        let block = readme
            .split("```toml\n")
            .skip(1)
            .find(|b| b.contains("[[auth.policy]]"))
            .and_then(|b| b.split("```").next())
            .unwrap();
        let config: crate::config::Config = toml::from_str(block).unwrap();
        let p = Policy::from_config(&config.auth).unwrap();
        let all = Actions::ALL;
        assert_eq!(p.actions(Some("alice"), "team-a/app"), all);
        assert_eq!(p.actions(Some("carol"), "team-a/app"), Actions::PULL);
        assert_eq!(p.actions(Some("bob"), "team-a/secrets"), Actions::NONE);
        assert_eq!(
            p.actions(Some("alice"), "team-a/secrets"),
            Actions::PULL.union(Actions::PUSH)
        );
        assert_eq!(p.actions(None, "public/x"), Actions::PULL);
        assert_eq!(p.actions(None, "team-a/app"), Actions::NONE);
        assert_eq!(p.actions(Some("root"), "anything"), all);
    }

    #[test]
    fn ties_go_to_the_first_written() {
        let c = AuthConfig {
            policy: vec![
                rule("a/*", |r| r.anonymous = strs(&["pull"])),
                rule("*/b", |r| r.anonymous = strs(&["push"])),
            ],
            ..AuthConfig::default()
        };
        let p = Policy::from_config(&c).unwrap();
        assert_eq!(p.actions(None, "a/b"), Actions::PULL);
    }
}
