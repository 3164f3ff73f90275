//! Identity: who is calling. Credentials, tokens and the keys that sign and verify them.

pub mod credentials;
pub mod external;
pub mod jwk;
pub mod jwt;
pub mod secret;
pub mod token;
