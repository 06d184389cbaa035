//! The boolean structure RBAC permissions and principals share, so that a rule is
//! assembled once for both.

/// An RBAC permission or principal.
pub trait Node: Sized {
    /// Matches everything.
    fn any() -> Self;
    fn and(items: Vec<Self>) -> Self;
    fn or(items: Vec<Self>) -> Self;
    fn not(item: Self) -> Self;
}
