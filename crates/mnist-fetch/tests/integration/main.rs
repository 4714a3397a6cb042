//! Integration tests of the fetcher against local HTTP servers and
//! directories. Nothing here touches the network.

mod fetch;
mod fixture;
mod server;
