//! Manifest files: multi-document YAML split into documents, each parsed on its own so that one
//! bad document never hides the others, with errors that give the file's own line numbers.

use std::fmt;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// One YAML document of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Document<'a> {
    /// 1-based position among the non-empty documents of the file.
    pub number: usize,
    /// 1-based line of the file where the document's text starts.
    pub first_line: usize,
    /// The document's text.
    pub text: &'a str,
}

/// Splits a file at its document markers (`---` or `...` at the start of a line). Documents
/// holding only comments and blank lines are left out; numbering counts the others.
pub fn split_documents(file: &str) -> Vec<Document<'_>> {
    fn push<'a>(docs: &mut Vec<Document<'a>>, text: &'a str, first_line: usize) {
        if has_content(text) {
            docs.push(Document {
                number: docs.len() + 1,
                first_line,
                text,
            });
        }
    }
    let mut docs = Vec::new();
    let mut start = 0usize; // byte offset of the current document
    let mut start_line = 1usize;
    let mut offset = 0usize;
    for (i, line) in file.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some(rest) = marker_rest(bare) {
            push(&mut docs, &file[start..offset], start_line);
            if rest.trim().is_empty() || bare.starts_with("...") {
                start = offset + line.len();
                start_line = line_no + 1;
            } else {
                // `--- value`: the document starts on the marker line itself.
                start = offset;
                start_line = line_no;
            }
        }
        offset += line.len();
    }
    push(&mut docs, &file[start..], start_line);
    docs
}

/// After a document marker, the rest of the line; `None` when the line is no marker.
fn marker_rest(line: &str) -> Option<&str> {
    for m in ["---", "..."] {
        if let Some(rest) = line.strip_prefix(m)
            && (rest.is_empty() || rest.starts_with([' ', '\t']))
        {
            return Some(rest);
        }
    }
    None
}

fn has_content(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    })
}

/// `apiVersion` and `kind` of a document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    /// `cilium.io/v2`, `v1`, ...
    #[serde(default)]
    pub api_version: String,
    /// `CiliumLoadBalancerIPPool`, `Service`, ...
    #[serde(default)]
    pub kind: String,
}

/// Why a document did not parse; the message carries the line and column in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct DocumentError {
    /// The document's number in its file.
    pub document: usize,
    /// The line where the document starts.
    pub first_line: usize,
    /// What the YAML parser said, with the position in the file.
    pub message: String,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "document {} (from line {}): {}",
            self.document, self.first_line, self.message
        )
    }
}

impl Document<'_> {
    /// Reads the document's `apiVersion` and `kind`.
    pub fn type_meta(&self) -> Result<TypeMeta, DocumentError> {
        self.parse()
    }

    /// Parses the document into `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, DocumentError> {
        serde_saphyr::from_str::<T>(self.text).map_err(|_| self.error_in_file_lines::<T>())
    }

    /// Parses again, preceded by as many empty lines as the document is deep into its file, so
    /// that the parser's positions are the file's. Only done on failure.
    fn error_in_file_lines<T: DeserializeOwned>(&self) -> DocumentError {
        let mut padded = "\n".repeat(self.first_line.saturating_sub(1));
        padded.push_str(self.text);
        let message = match serde_saphyr::from_str::<T>(&padded) {
            Err(e) => e.without_snippet().to_string(),
            Ok(_) => "the document parses only with a different line layout".to_string(),
        };
        DocumentError {
            document: self.number,
            first_line: self.first_line,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_split_at_markers_and_empty_ones_dropped() {
        let f = "# header\n---\na: 1\n---\n# only a comment\n---\nb: 2\n...\n--- c: 3\n";
        let d = split_documents(f);
        assert_eq!(d.len(), 3);
        assert_eq!((d[0].number, d[0].first_line, d[0].text), (1, 3, "a: 1\n"));
        assert_eq!((d[1].number, d[1].first_line, d[1].text), (2, 7, "b: 2\n"));
        assert_eq!(
            (d[2].number, d[2].first_line, d[2].text),
            (3, 9, "--- c: 3\n")
        );
    }

    #[test]
    fn a_file_without_markers_is_one_document() {
        let d = split_documents("kind: Service\nmetadata:\n  name: x\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].first_line, 1);
        assert!(split_documents("").is_empty());
        assert!(split_documents("---\n---\n").is_empty());
    }

    #[test]
    fn markers_need_a_line_of_their_own_or_a_space() {
        let d = split_documents("a: |\n  ---\nb: ---x\n----\n");
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn errors_give_the_line_in_the_file() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct P {
            port: u16,
        }
        let f = "port: 1\n---\nport: 2\n---\n\nport: 70000\n";
        let d = split_documents(f);
        assert!(d[0].parse::<P>().is_ok());
        let e = d[2].parse::<P>().unwrap_err();
        assert_eq!(e.document, 3);
        assert_eq!(e.first_line, 5);
        assert!(e.message.contains("line 6"), "{e}");
        assert!(e.to_string().starts_with("document 3 (from line 5): "));
    }

    #[test]
    fn type_meta_reads_only_the_header() {
        let d = split_documents(
            "apiVersion: cilium.io/v2\nkind: CiliumBGPPeerConfig\nspec: {x: [1, 2]}\n",
        );
        let t = d[0].type_meta().unwrap();
        assert_eq!(t.api_version, "cilium.io/v2");
        assert_eq!(t.kind, "CiliumBGPPeerConfig");
    }
}
