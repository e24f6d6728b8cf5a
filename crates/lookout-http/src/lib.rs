//! The proxy's protocol logic, without I/O: TLS ClientHello SNI, search terms and safe search,
//! download sniffing and `Content-Disposition`, proxy credentials, and the HTML pages. Every
//! parser here reads bytes from strangers, so each returns an error or `None` on bad input and
//! never panics (fuzzed in `fuzz/`).

mod auth;
mod download;
mod pages;
mod search;
mod sni;

pub use auth::basic_credentials;
pub use download::{disposition_filename, sniff, Sniffed, SNIFF_LEN};
pub use pages::{block_page, encode_param, escape, notice_page, warn_page, Notice};
pub use search::{
    decode_query_value, force_safe_search, is_google, safe_search_header, search_term,
};
pub use sni::{client_hello_sni, SniError, MAX_HELLO};
