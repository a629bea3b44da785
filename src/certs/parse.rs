//! Reading certificate files: PEM (one or several blocks), DER, and PKCS#7
//! certs-only bundles (RFC 2315 / RFC 5652 §5 SignedData with no signers),
//! as DER or as PEM labelled `PKCS7`.
//!
//! The input comes from users (uploads, files on the command line), so every
//! failure says where it happened: which PEM block and label, or which DER
//! structure. PEM blocks are split here and each is decoded on its own so a
//! bad block can be named; the DER itself is decoded by `x509-cert` and `cms`.

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use const_oid::db::rfc5911::ID_SIGNED_DATA;
use der::{Decode, Encode, Reader, SliceReader, Tag};
use x509_cert::Certificate;

use super::Fingerprint;

/// A certificate as read from the input, with its DER bytes and fingerprint.
#[derive(Debug, Clone)]
pub struct ParsedCert {
    der: Vec<u8>,
    certificate: Certificate,
    fingerprint: Fingerprint,
}

impl ParsedCert {
    /// Decodes one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, der::Error> {
        let certificate = Certificate::from_der(der)?;
        Ok(Self::new(der.to_vec(), certificate))
    }

    fn new(der: Vec<u8>, certificate: Certificate) -> Self {
        let fingerprint = Fingerprint::of_der(&der);
        Self {
            der,
            certificate,
            fingerprint,
        }
    }

    /// The certificate's DER encoding, exactly as read.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The decoded certificate.
    pub fn certificate(&self) -> &x509_cert::Certificate {
        &self.certificate
    }

    /// SHA-256 of [`Self::der`].
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

/// Why an input is not a readable certificate file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("the certificate file is empty; give a certificate in PEM, DER or PKCS#7 form")]
    Empty,
    /// Neither a PEM header nor an ASN.1 SEQUENCE at the start.
    #[error("input is neither PEM (no `-----BEGIN` line) nor DER (first byte is 0x{first_byte:02x}, not a SEQUENCE); give a certificate in PEM, DER or PKCS#7 form")]
    NotCertificate {
        /// The first byte of the input.
        first_byte: u8,
    },
    /// A PEM block whose END line is missing.
    #[error("PEM block {block} (`-----BEGIN {label}-----`) has no matching `-----END {label}-----` line; the file looks truncated, copy it again")]
    UnterminatedPem {
        /// 1-based block number.
        block: usize,
        /// The block's label.
        label: String,
    },
    /// A PEM block that is not valid PEM (bad base64, bad boundaries).
    #[error("PEM block {block} ({label}) is not valid PEM: {error}; copy the block again without changing its lines")]
    Pem {
        /// 1-based block number.
        block: usize,
        /// The block's label.
        label: String,
        /// What the PEM decoder reported.
        error: der::pem::Error,
    },
    /// A PEM file without any certificate block.
    #[error("the PEM file holds no CERTIFICATE or PKCS7 block (found: {}); give the certificate, not a key or a request", found_labels(.labels))]
    NoCertificateInPem {
        /// The labels of the blocks that were found.
        labels: Vec<String>,
    },
    /// A PEM block whose content is not a certificate.
    #[error("PEM block {block} ({label}) does not hold a valid certificate: {error}")]
    PemContent {
        /// 1-based block number.
        block: usize,
        /// The block's label.
        label: String,
        /// Why its content did not decode.
        #[source]
        error: Box<ParseError>,
    },
    /// DER that is not an X.509 certificate.
    #[error("not a valid DER X.509 certificate: {error}; check that the file is a certificate and complete")]
    Der {
        /// What the DER decoder reported.
        error: der::Error,
    },
    /// DER that is not a PKCS#7 SignedData.
    #[error("not a valid PKCS#7 certs-only bundle: {error}; export it again (e.g. `openssl crl2pkcs7 -nocrl -certfile FILE`)")]
    Pkcs7 {
        /// What the DER decoder reported.
        error: der::Error,
    },
    /// A PKCS#7 ContentInfo of another type than SignedData.
    #[error("PKCS#7 content type is {content_type}, not signedData (1.2.840.113549.1.7.2); give a certs-only bundle")]
    Pkcs7ContentType {
        /// The content type found.
        content_type: der::asn1::ObjectIdentifier,
    },
    /// A PKCS#7 bundle without X.509 certificates.
    #[error(
        "the PKCS#7 bundle holds no X.509 certificates; export it again including the certificate"
    )]
    Pkcs7NoCertificates,
}

fn found_labels(labels: &[String]) -> String {
    if labels.is_empty() {
        "no PEM blocks".to_string()
    } else {
        labels.join(", ")
    }
}

/// Reads every certificate in `input`: PEM with one or several
/// `CERTIFICATE` (or `PKCS7`) blocks, a DER certificate, or a DER PKCS#7
/// certs-only bundle.
///
/// `input` is untrusted. In PEM, text around the blocks (as
/// `openssl x509 -text` writes) and blocks with other labels (a private key
/// next to its certificate) are skipped; a file with no certificate block at
/// all is an error naming the labels found. Never returns an empty vector.
pub fn parse(input: &[u8]) -> Result<Vec<ParsedCert>, ParseError> {
    let trimmed = input.trim_ascii();
    let Some(&first_byte) = trimmed.first() else {
        return Err(ParseError::Empty);
    };
    let is_sequence = input.first() == Some(&0x30);
    if !contains(input, b"-----BEGIN ") {
        if !is_sequence {
            return Err(ParseError::NotCertificate { first_byte });
        }
        return parse_der(input);
    }
    // why: DER may by chance hold the PEM marker inside a string field.
    if is_sequence {
        if let Ok(certs) = parse_der(input) {
            return Ok(certs);
        }
    }
    parse_pem(input)
}

/// A DER certificate or PKCS#7 ContentInfo, told apart by the first field
/// inside the outer SEQUENCE: a ContentInfo starts with its content type
/// OID, a certificate with its TBSCertificate SEQUENCE.
fn parse_der(der: &[u8]) -> Result<Vec<ParsedCert>, ParseError> {
    if starts_with_oid(der) {
        return parse_pkcs7(der);
    }
    let cert = ParsedCert::from_der(der).map_err(|error| ParseError::Der { error })?;
    Ok(vec![cert])
}

fn starts_with_oid(der: &[u8]) -> bool {
    let Ok(mut reader) = SliceReader::new(der) else {
        return false;
    };
    if reader.peek_tag() != Ok(Tag::Sequence) {
        return false;
    }
    let Ok(_) = der::Header::decode(&mut reader) else {
        return false;
    };
    reader.peek_tag() == Ok(Tag::ObjectIdentifier)
}

fn parse_pkcs7(der: &[u8]) -> Result<Vec<ParsedCert>, ParseError> {
    let info = ContentInfo::from_der(der).map_err(|error| ParseError::Pkcs7 { error })?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(ParseError::Pkcs7ContentType {
            content_type: info.content_type,
        });
    }
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|error| ParseError::Pkcs7 { error })?;
    let mut certs = Vec::new();
    for choice in signed.certificates.iter().flat_map(|set| set.0.iter()) {
        if let cms::cert::CertificateChoices::Certificate(cert) = choice {
            // why: the bundle was decoded as strict DER, so re-encoding
            // gives back the exact bytes and thus the right fingerprint.
            let bytes = cert.to_der().map_err(|error| ParseError::Pkcs7 { error })?;
            certs.push(ParsedCert::new(bytes, cert.clone()));
        }
    }
    if certs.is_empty() {
        return Err(ParseError::Pkcs7NoCertificates);
    }
    Ok(certs)
}

/// Labels whose content we read: certificates, and PKCS#7 as OpenSSL
/// (`PKCS7`) and older tools (`PKCS #7 SIGNED DATA`, RFC 7468 §2) write it.
fn is_certificate_label(label: &str) -> bool {
    matches!(
        label,
        "CERTIFICATE" | "X509 CERTIFICATE" | "PKCS7" | "PKCS #7 SIGNED DATA" | "CMS"
    )
}

fn parse_pem(input: &[u8]) -> Result<Vec<ParsedCert>, ParseError> {
    let mut certs = Vec::new();
    let mut labels = Vec::new();
    for (index, block) in PemBlocks::new(input).enumerate() {
        let block_no = index + 1;
        let block = block.map_err(|label| ParseError::UnterminatedPem {
            block: block_no,
            label,
        })?;
        if !is_certificate_label(&block.label) {
            labels.push(block.label);
            continue;
        }
        let (_, der) = der::pem::decode_vec(block.text).map_err(|error| ParseError::Pem {
            block: block_no,
            label: block.label.clone(),
            error,
        })?;
        let found = parse_der(&der).map_err(|error| ParseError::PemContent {
            block: block_no,
            label: block.label.clone(),
            error: Box::new(error),
        })?;
        certs.extend(found);
    }
    if certs.is_empty() {
        return Err(ParseError::NoCertificateInPem { labels });
    }
    Ok(certs)
}

/// One `-----BEGIN X-----` ... `-----END X-----` block, boundaries included.
struct PemBlock<'a> {
    label: String,
    text: &'a [u8],
}

/// Splits PEM text into blocks; yields `Err(label)` for a block whose END
/// line is missing, then stops.
struct PemBlocks<'a> {
    rest: &'a [u8],
}

impl<'a> PemBlocks<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }
}

impl<'a> Iterator for PemBlocks<'a> {
    type Item = Result<PemBlock<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        const BEGIN: &[u8] = b"-----BEGIN ";
        let start = find(self.rest, BEGIN)?;
        let from_begin = self.rest.get(start..)?;
        let after_begin = from_begin.get(BEGIN.len()..)?;
        let label_len = find(after_begin, b"-----").unwrap_or(after_begin.len());
        let label = String::from_utf8_lossy(after_begin.get(..label_len)?).into_owned();
        let end_marker = format!("-----END {label}-----");
        let Some(end) = find(from_begin, end_marker.as_bytes()) else {
            self.rest = &[];
            return Some(Err(label));
        };
        let block_len = end + end_marker.len();
        let text = from_begin.get(..block_len)?;
        self.rest = from_begin.get(block_len..).unwrap_or_default();
        Some(Ok(PemBlock { label, text }))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_is_empty_error() {
        assert!(matches!(parse(b" \n\t"), Err(ParseError::Empty)));
    }

    #[test]
    fn text_is_not_a_certificate() {
        let err = parse(b"hello").unwrap_err();
        assert!(matches!(
            err,
            ParseError::NotCertificate { first_byte: b'h' }
        ));
        assert!(err.to_string().contains("neither PEM"));
    }

    #[test]
    fn pem_blocks_are_split_with_labels() {
        let text = b"junk\n-----BEGIN A-----\nAAAA\n-----END A-----\n\
                     -----BEGIN B C-----\n-----END B C-----\n";
        let blocks: Vec<_> = PemBlocks::new(text).collect();
        assert_eq!(blocks.len(), 2);
        let labels: Vec<_> = blocks
            .into_iter()
            .map(|b| b.map(|b| b.label).unwrap())
            .collect();
        assert_eq!(labels, ["A", "B C"]);
    }

    #[test]
    fn pem_block_without_end_names_block_and_label() {
        let text = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
        let err = parse(text).unwrap_err();
        assert!(matches!(
            &err,
            ParseError::UnterminatedPem { block: 1, label } if label == "CERTIFICATE"
        ));
    }

    #[test]
    fn pem_without_certificate_names_labels() {
        let text = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let err = parse(text).unwrap_err();
        assert!(err.to_string().contains("PRIVATE KEY"), "{err}");
    }

    #[test]
    fn bad_base64_names_the_block() {
        let text = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let err = parse(text).unwrap_err();
        assert!(matches!(err, ParseError::Pem { block: 1, .. }), "{err}");
    }

    #[test]
    fn der_sequence_of_garbage_is_der_error() {
        assert!(matches!(
            parse(&[0x30, 0x03, 0x02, 0x01, 0x00]),
            Err(ParseError::Der { .. })
        ));
    }

    #[test]
    fn der_content_info_is_told_apart() {
        // SEQUENCE { OID 1.2.3 } (a ContentInfo that lacks its content).
        let der = [0x30, 0x04, 0x06, 0x02, 0x2a, 0x03];
        assert!(starts_with_oid(&der));
        assert!(matches!(parse(&der), Err(ParseError::Pkcs7 { .. })));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn arbitrary_pem_bodies_never_panic(body in "[A-Za-z0-9+/=\n-]{0,300}", label in "[A-Z0-9 #]{0,20}") {
            let text = format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n");
            let _ = parse(text.as_bytes());
        }

        #[test]
        fn der_sequences_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut der = vec![0x30, 0x82];
            der.extend(tail);
            let _ = parse(&der);
        }
    }
}
