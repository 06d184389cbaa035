//! Host-name relations every part of the mesh needs: whether two hosts (either possibly a
//! `*`/`*.suffix` wildcard) can name the same service, and whether one covers the other.

/// True when `a` and `b` can name the same host.
pub fn overlaps(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => sa.ends_with(sb) || sb.ends_with(sa),
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// True when every host `inner` may name is also named by `outer` (`*.com` covers `a.com`
/// and `*.a.com`, not the other way round).
pub fn covers(outer: &str, inner: &str) -> bool {
    match (outer.strip_prefix('*'), inner.strip_prefix('*')) {
        (Some(so), Some(si)) => si.ends_with(so),
        (Some(so), None) => inner.ends_with(so),
        (None, Some(_)) => false,
        (None, None) => outer == inner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap() {
        assert!(overlaps("*.foo.com", "*.com"));
        assert!(overlaps("a.foo.com", "*.foo.com"));
        assert!(overlaps("*", "a.b.c"));
        assert!(!overlaps("a.com", "b.com"));
        assert!(!overlaps("*.a.com", "*.b.com"));
    }

    #[test]
    fn coverage() {
        assert!(covers("*.com", "a.foo.com"));
        assert!(covers("*.com", "*.foo.com"));
        assert!(!covers("a.com", "*.com"));
        assert!(!covers("*.foo.com", "*.com"));
        assert!(covers("*", "anything"));
    }
}
