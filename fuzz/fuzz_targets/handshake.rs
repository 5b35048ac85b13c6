//! Arbitrary bytes through the HTTP parser, upgrade validation and
//! permessage-deflate negotiation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prefork_ws::protocol::{
    accept_key, build_101, deflate::negotiate, parse_request, validate_upgrade, Deflater, Inflater,
};

fuzz_target!(|data: &[u8]| {
    match parse_request(data, 4096) {
        Ok(Some((req, n))) => {
            assert!(n <= data.len());
            let _ = (req.query_pairs(), req.cookies(), req.keep_alive(), req.is_websocket_upgrade());
            match validate_upgrade(&req) {
                Ok(up) => {
                    let accept = accept_key(&up.key);
                    let ext = up.extensions.as_deref().and_then(negotiate);
                    if let Some((cfg, resp)) = &ext {
                        let _ = Deflater::new(cfg);
                        let _ = Inflater::new(cfg);
                        assert!(resp.starts_with("permessage-deflate"));
                    }
                    let r = build_101(&accept, None, ext.as_ref().map(|e| e.1.as_str()), &[]);
                    assert!(r.ends_with(b"\r\n\r\n"));
                }
                Err(e) => {
                    assert!([400, 426].contains(&e.status()));
                    let _ = e.response();
                }
            }
        }
        Ok(None) => assert!(data.len() <= 4096),
        Err(e) => {
            assert!([400, 431].contains(&e.status()));
            let _ = e.response();
        }
    }
    // the extensions parser on its own
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some((cfg, _)) = negotiate(s) {
            assert!((8..=15).contains(&cfg.server_max_window_bits));
            assert!((8..=15).contains(&cfg.client_max_window_bits));
        }
    }
});
