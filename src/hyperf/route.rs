//! Path patterns with parameters (`/room/{id}`) and a route table by method and path.

/// Path parameters of a matched route, in pattern order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The value of `{name}` in the matched path.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every parameter, in pattern order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A route path: literal segments and `{name}` segments, each matching one non-empty path
/// segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    segments: Vec<Segment>,
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

impl Pattern {
    pub fn parse(path: &str) -> Pattern {
        let segments = split(path)
            .map(
                |s| match s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_string()),
                    None => Segment::Literal(s.to_string()),
                },
            )
            .collect();
        Pattern { segments }
    }

    pub fn matches(&self, path: &str) -> Option<Params> {
        let mut params = Vec::new();
        let mut parts = split(path);
        for seg in &self.segments {
            let part = parts.next()?;
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), part.to_string())),
            }
        }
        parts.next().is_none().then_some(Params(params))
    }
}

/// What a lookup found.
pub(crate) enum Lookup<'a, T> {
    Found(&'a T, Params),
    /// The path exists with other methods (for `405` and its `Allow` header).
    MethodNotAllowed(Vec<String>),
    NotFound,
}

/// Routes of one server: (method, pattern, target), first match wins.
pub(crate) struct Table<T> {
    routes: Vec<(String, Pattern, T)>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { routes: Vec::new() }
    }
}

impl<T> Table<T> {
    /// Adds a route; `method` `*` matches any method. Returns the target's index.
    pub fn add(&mut self, method: &str, path: &str, target: T) -> usize {
        self.routes
            .push((method.to_ascii_uppercase(), Pattern::parse(path), target));
        self.routes.len() - 1
    }

    pub fn target_mut(&mut self, index: usize) -> Option<&mut T> {
        self.routes.get_mut(index).map(|(_, _, t)| t)
    }

    pub fn lookup(&self, method: &str, path: &str) -> Lookup<'_, T> {
        let mut allowed = Vec::new();
        for (m, pattern, target) in &self.routes {
            let Some(params) = pattern.matches(path) else {
                continue;
            };
            if m == "*" || m.eq_ignore_ascii_case(method) {
                return Lookup::Found(target, params);
            }
            if !allowed.contains(m) {
                allowed.push(m.clone());
            }
        }
        if allowed.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::MethodNotAllowed(allowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_literals_and_trailing_slashes() {
        let p = Pattern::parse("/room/{id}/user/{name}");
        let m = p.matches("/room/42/user/ann").unwrap();
        assert_eq!((m.get("id"), m.get("name")), (Some("42"), Some("ann")));
        assert!(p.matches("/room/42/user").is_none());
        assert!(p.matches("/room/42/user/ann/more").is_none());
        assert!(p.matches("/hall/42/user/ann").is_none());
        assert!(Pattern::parse("/").matches("/").is_some());
        assert!(Pattern::parse("/").matches("/x").is_none());
        assert!(Pattern::parse("/wss/demo").matches("/wss/demo/").is_some());
    }

    #[test]
    fn lookup_tells_not_found_from_method_not_allowed() {
        let mut t = Table::default();
        t.add("GET", "/a/{x}", 1);
        t.add("post", "/a/{x}", 2);
        t.add("*", "/any", 3);
        assert!(matches!(t.lookup("POST", "/a/1"), Lookup::Found(2, _)));
        assert!(matches!(t.lookup("DELETE", "/any"), Lookup::Found(3, _)));
        match t.lookup("PUT", "/a/1") {
            Lookup::MethodNotAllowed(m) => assert_eq!(m, ["GET", "POST"]),
            _ => panic!("expected 405"),
        }
        assert!(matches!(t.lookup("GET", "/b"), Lookup::NotFound));
    }
}
