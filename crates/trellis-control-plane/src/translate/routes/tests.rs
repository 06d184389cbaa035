//! Route translation through the whole pipeline (snapshot → route configurations).
