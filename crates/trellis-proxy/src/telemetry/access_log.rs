//! Access log lines in Istio's default formats: the text format of `meshConfig.accessLogFormat`
//! when unset (`EnvoyTextLogFormat`) and the JSON one of `accessLogEncoding: JSON`
//! (`EnvoyJSONLogFormatIstio`), field for field as Envoy 1.40 writes them: `-` for missing
//! values in text, `null` in JSON, numbers as numbers, JSON keys sorted.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// `--access-log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// One request (or TCP connection) as the access log sees it. `None` is Envoy's "-".
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub start: SystemTime,
    pub method: Option<&'a str>,
    pub path: Option<&'a str>,
    pub protocol: Option<&'a str>,
    /// 0 for TCP.
    pub response_code: u16,
    /// Rendered, `-` when none.
    pub flags: &'a str,
    pub details: Option<&'a str>,
    pub transport_failure: Option<&'a str>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration_ms: u64,
    pub upstream_service_time: Option<&'a str>,
    pub x_forwarded_for: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub authority: Option<&'a str>,
    pub upstream_host: Option<SocketAddr>,
    pub upstream_cluster: Option<&'a str>,
    pub upstream_local: Option<SocketAddr>,
    pub downstream_local: SocketAddr,
    pub downstream_remote: SocketAddr,
    pub server_name: Option<&'a str>,
    pub route_name: Option<&'a str>,
}

impl Entry<'_> {
    /// The line, without its newline.
    pub fn format(&self, f: Format) -> String {
        match f {
            Format::Text => self.text(),
            Format::Json => self.json(),
        }
    }

    fn text(&self) -> String {
        let d = |v: Option<&str>| v.filter(|s| !s.is_empty()).unwrap_or("-").to_string();
        let a = |v: Option<SocketAddr>| v.map_or("-".to_string(), |a| a.to_string());
        format!(
            "[{}] \"{} {} {}\" {} {} {} - \"{}\" {} {} {} {} \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" {} {} {} {} {} {}",
            start_time(self.start),
            d(self.method),
            d(self.path),
            d(self.protocol),
            self.response_code,
            self.flags,
            d(self.details),
            d(self.transport_failure),
            self.bytes_received,
            self.bytes_sent,
            self.duration_ms,
            d(self.upstream_service_time),
            d(self.x_forwarded_for),
            d(self.user_agent),
            d(self.request_id),
            d(self.authority),
            a(self.upstream_host),
            d(self.upstream_cluster),
            a(self.upstream_local),
            self.downstream_local,
            self.downstream_remote,
            d(self.server_name),
            d(self.route_name),
        )
    }

    fn json(&self) -> String {
        let s = |v: Option<&str>| match v.filter(|s| !s.is_empty()) {
            Some(s) => Value::String(s.to_string()),
            None => Value::Null,
        };
        let a = |v: Option<SocketAddr>| v.map_or(Value::Null, |a| Value::String(a.to_string()));
        // Built in sorted order, so the output is sorted whatever serde_json's map is.
        let fields: [(&str, Value); 24] = [
            ("authority", s(self.authority)),
            ("bytes_received", json!(self.bytes_received)),
            ("bytes_sent", json!(self.bytes_sent)),
            ("connection_termination_details", Value::Null),
            (
                "downstream_local_address",
                json!(self.downstream_local.to_string()),
            ),
            (
                "downstream_remote_address",
                json!(self.downstream_remote.to_string()),
            ),
            ("duration", json!(self.duration_ms)),
            ("method", s(self.method)),
            ("path", s(self.path)),
            ("protocol", s(self.protocol)),
            ("request_id", s(self.request_id)),
            ("requested_server_name", s(self.server_name)),
            ("response_code", json!(self.response_code)),
            ("response_code_details", s(self.details)),
            ("response_flags", json!(self.flags)),
            ("route_name", s(self.route_name)),
            ("start_time", json!(start_time(self.start))),
            ("upstream_cluster", s(self.upstream_cluster)),
            ("upstream_host", a(self.upstream_host)),
            ("upstream_local_address", a(self.upstream_local)),
            ("upstream_service_time", s(self.upstream_service_time)),
            (
                "upstream_transport_failure_reason",
                s(self.transport_failure),
            ),
            ("user_agent", s(self.user_agent)),
            ("x_forwarded_for", s(self.x_forwarded_for)),
        ];
        let mut out = String::from("{");
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&Value::String((*k).to_string()).to_string());
            out.push(':');
            out.push_str(&v.to_string());
        }
        out.push('}');
        out
    }
}

/// `%START_TIME%`: `2026-11-23T23:37:17.457Z` (UTC, milliseconds).
pub fn start_time(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 2026-11-23T23:37:17.457Z.
    fn when() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_477_037_457)
    }

    fn no_healthy_upstream() -> Entry<'static> {
        Entry {
            start: when(),
            method: Some("GET"),
            path: Some("/empty"),
            protocol: Some("HTTP/1.1"),
            response_code: 503,
            flags: "UH",
            details: Some("no_healthy_upstream"),
            transport_failure: None,
            bytes_received: 0,
            bytes_sent: 19,
            duration_ms: 0,
            upstream_service_time: None,
            x_forwarded_for: None,
            user_agent: Some("curl/7.88.1"),
            request_id: Some("2f7d9cb5-0a35-421b-a3a2-817e909477d9"),
            authority: Some("127.0.0.1:19901"),
            upstream_host: None,
            upstream_cluster: Some("empty"),
            upstream_local: None,
            downstream_local: "127.0.0.1:19901".parse().unwrap(),
            downstream_remote: "127.0.0.1:40570".parse().unwrap(),
            server_name: None,
            route_name: Some("empty"),
        }
    }

    #[test]
    fn timestamps_are_envoys() {
        assert_eq!(start_time(when()), "2026-11-23T23:37:17.457Z");
        assert_eq!(start_time(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            start_time(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    /// The lines Envoy 1.40 wrote for the same request (Istio's default formats).
    #[test]
    fn text_and_json_match_envoy() {
        let e = no_healthy_upstream();
        assert_eq!(
            e.format(Format::Text),
            "[2026-11-23T23:37:17.457Z] \"GET /empty HTTP/1.1\" 503 UH no_healthy_upstream - \"-\" 0 19 0 - \"-\" \"curl/7.88.1\" \"2f7d9cb5-0a35-421b-a3a2-817e909477d9\" \"127.0.0.1:19901\" \"-\" empty - 127.0.0.1:19901 127.0.0.1:40570 - empty"
        );
        assert_eq!(
            e.format(Format::Json),
            r#"{"authority":"127.0.0.1:19901","bytes_received":0,"bytes_sent":19,"connection_termination_details":null,"downstream_local_address":"127.0.0.1:19901","downstream_remote_address":"127.0.0.1:40570","duration":0,"method":"GET","path":"/empty","protocol":"HTTP/1.1","request_id":"2f7d9cb5-0a35-421b-a3a2-817e909477d9","requested_server_name":null,"response_code":503,"response_code_details":"no_healthy_upstream","response_flags":"UH","route_name":"empty","start_time":"2026-11-23T23:37:17.457Z","upstream_cluster":"empty","upstream_host":null,"upstream_local_address":null,"upstream_service_time":null,"upstream_transport_failure_reason":null,"user_agent":"curl/7.88.1","x_forwarded_for":null}"#
        );
    }

    #[test]
    fn a_refused_tcp_connection_matches_envoy() {
        let e = Entry {
            method: None,
            path: None,
            protocol: None,
            response_code: 0,
            flags: "UF,URX",
            details: None,
            transport_failure: Some("delayed_connect_error:_Connection_refused"),
            bytes_sent: 0,
            user_agent: None,
            request_id: None,
            authority: None,
            upstream_host: Some("127.0.0.1:1".parse().unwrap()),
            upstream_cluster: Some("refused"),
            downstream_local: "127.0.0.1:19902".parse().unwrap(),
            downstream_remote: "127.0.0.1:58594".parse().unwrap(),
            route_name: None,
            ..no_healthy_upstream()
        };
        assert_eq!(
            e.format(Format::Text),
            "[2026-11-23T23:37:17.457Z] \"- - -\" 0 UF,URX - - \"delayed_connect_error:_Connection_refused\" 0 0 0 - \"-\" \"-\" \"-\" \"-\" \"127.0.0.1:1\" refused - 127.0.0.1:19902 127.0.0.1:58594 - -"
        );
    }
}
