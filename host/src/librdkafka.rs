//! What librdkafka properties do beyond configuring a client: the ones
//! that load code into the process or run a command, and the ones that
//! name a file. Manifests pass librdkafka properties through as they are
//! (`source.properties`, a Kafka sink's `properties`); a host that takes
//! manifests over HTTP must know which of them reach outside the client.
//!
//! From librdkafka 2.12's CONFIGURATION.md (the version rdkafka bundles).

/// Properties that make librdkafka load a shared library or run a shell
/// command, when the client is created (and some again later). A manifest
/// applied over the admin API may not use them unless the host allows it
/// (`sluice serve --allow-kafka-property`), as Kafka Connect's
/// `connector.client.config.override.policy` does; `sluice validate` never
/// passes them to librdkafka.
pub const LOADS_CODE: &[(&str, &str)] = &[
    ("plugin.library.paths", "loads the shared libraries it names into the host"),
    ("ssl.engine.location", "loads the OpenSSL engine library it names into the host"),
    ("ssl.engine.id", "chooses an OpenSSL engine to load into the host"),
    ("ssl.providers", "loads the OpenSSL providers it names (a name may be a library's path) into the host"),
    ("sasl.kerberos.kinit.cmd", "is a shell command librdkafka runs on the host"),
];

/// Why `key` loads code or runs a command, if it does.
pub fn loads_code(key: &str) -> Option<&'static str> {
    LOADS_CODE.iter().find(|(k, _)| k.eq_ignore_ascii_case(key.trim())).map(|(_, why)| *why)
}

/// Whether the value of `key` is a path on the host: `ssl.ca.location`,
/// `ssl.key.location`, `sasl.kerberos.keytab`,
/// `sasl.oauthbearer.assertion.private.key.file`, `offset.store.path` and
/// the like. `probe`, which makes librdkafka look in the system's usual
/// places for CA certificates, is not a path.
pub fn names_file(key: &str, value: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    let by_name = [".location", ".file", ".path", "keytab"].iter().any(|end| key.ends_with(end));
    by_name && !(key.ends_with("ca.location") && value.trim() == "probe")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every property of librdkafka's reference whose value is a path or
    /// loads code is one of ours, and no other.
    #[test]
    fn the_properties_that_reach_outside_the_client_are_known() {
        let files = [
            "ssl.key.location",
            "ssl.certificate.location",
            "ssl.ca.location",
            "https.ca.location",
            "ssl.crl.location",
            "ssl.keystore.location",
            "sasl.kerberos.keytab",
            "sasl.oauthbearer.assertion.private.key.file",
            "sasl.oauthbearer.assertion.file",
            "sasl.oauthbearer.assertion.jwt.template.file",
            "offset.store.path",
        ];
        for key in files {
            assert!(names_file(key, "/x"), "{key}");
            assert!(loads_code(key).is_none(), "{key}");
        }
        for key in ["plugin.library.paths", "ssl.engine.location", "sasl.kerberos.kinit.cmd", " SSL.Providers "] {
            assert!(loads_code(key).is_some(), "{key}");
        }
        for key in ["ssl.key.password", "sasl.username", "security.protocol", "ssl.ca.pem", "ssl.ca.certificate.stores"]
        {
            assert!(!names_file(key, "x") && loads_code(key).is_none(), "{key}");
        }
        assert!(!names_file("ssl.ca.location", "probe"));
        assert!(!names_file("https.ca.location", " probe"));
        assert!(names_file("ssl.key.location", "probe"));
    }
}
