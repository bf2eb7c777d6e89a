//! Fuzz target `route_json`: the gateway's route file loader,
//! `milepost_core::fleet::route::RouteJson::from_json`, over arbitrary UTF-8.
//!
//! Loading must never panic; a route it accepts must survive `to_json` -> `from_json` unchanged
//! (accepted routes are validated, so they hold no NaN and `==` is meaningful).
#![no_main]

use libfuzzer_sys::fuzz_target;
use milepost_core::fleet::route::RouteJson;
use milepost_proto::route::Route;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(route) = Route::from_json(text) {
        let again = Route::from_json(&route.to_json()).expect("to_json output loads again");
        assert_eq!(route, again);
    }
});
