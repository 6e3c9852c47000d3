//! Persistent state: registered keys and certificates, the id reverse-lookup cache (sqlx; SQLite by
//! default, PostgreSQL for several gateways).
