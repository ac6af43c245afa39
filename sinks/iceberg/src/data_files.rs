//! How a table's Parquet data files are written: the writer's settings
//! from the table's `write.parquet.*` properties, with Iceberg's defaults
//! (`writer_properties`), and the writer that rolls files under the
//! table's location with them (`files`), for the sink and `NewTable`.
//!
//! The iceberg crate's writer takes parquet-rs's own defaults otherwise: a
//! row group of up to a million rows, uncompressed. A file of feature rows
//! holding lists is then one row group of a hundred megabytes or more,
//! and a reader (DataFusion's, pyarrow's) fetches a row group's columns
//! whole: its memory follows the table. Iceberg bounds row groups by size
//! (`write.parquet.row-group-size-bytes`, 128 MiB) and compresses with
//! zstd (`write.parquet.compression-codec`), as Spark, Flink and pyiceberg
//! write it.

use std::collections::HashMap;

use iceberg::spec::DataFileFormat;
use iceberg::table::Table;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// The most a row group holds, compressed (Iceberg's
/// `parquet.block.size`).
const ROW_GROUP_BYTES: &str = "write.parquet.row-group-size-bytes";
/// `zstd`, `gzip`, `snappy`, `lz4`, `brotli` or `uncompressed`.
const COMPRESSION_CODEC: &str = "write.parquet.compression-codec";
/// The codec's level (zstd 1–22, gzip 0–9, brotli 0–11); the codec's
/// default otherwise.
const COMPRESSION_LEVEL: &str = "write.parquet.compression-level";

/// Iceberg's default for [`ROW_GROUP_BYTES`].
const DEFAULT_ROW_GROUP_BYTES: usize = 128 << 20;

/// What writes a table's data files: Parquet with `properties` (from
/// [`writer_properties`]), rolled at the default size, under the table's
/// location, named `{prefix}-…`.
pub(crate) type Files =
    RollingFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// The builder of `table`'s data files (see [`Files`]).
pub(crate) fn files(table: &Table, properties: WriterProperties, prefix: String) -> Result<Files, String> {
    let metadata = table.metadata();
    let location = DefaultLocationGenerator::new(metadata).map_err(|e| format!("data file locations: {e}"))?;
    let names = DefaultFileNameGenerator::new(prefix, None, DataFileFormat::Parquet);
    let parquet = ParquetWriterBuilder::new(properties, metadata.current_schema().clone());
    Ok(RollingFileWriterBuilder::new_with_default_file_size(parquet, table.file_io().clone(), location, names))
}

/// The Parquet writer's settings for a table with `properties`, or what
/// is wrong with one of them and how to mend it.
pub(crate) fn writer_properties(properties: &HashMap<String, String>) -> Result<WriterProperties, String> {
    settings(properties).map_err(|e| {
        format!("{e}; set it, or remove it for Iceberg's default, with any Iceberg client (pyiceberg: set_properties)")
    })
}

/// The settings `properties` say, or what is wrong with one of them.
fn settings(properties: &HashMap<String, String>) -> Result<WriterProperties, String> {
    let row_group_bytes =
        match properties.get(ROW_GROUP_BYTES) {
            None => DEFAULT_ROW_GROUP_BYTES,
            Some(text) => text.trim().parse::<usize>().ok().filter(|&bytes| bytes > 0).ok_or_else(|| {
                format!("the table property {ROW_GROUP_BYTES} is `{text}`: expected a number of bytes")
            })?,
        };
    let level = match properties.get(COMPRESSION_LEVEL) {
        None => None,
        Some(text) => Some(text.trim().parse::<i32>().map_err(|_| {
            format!("the table property {COMPRESSION_LEVEL} is `{text}`: expected the codec's level, a number")
        })?),
    };
    let codec = properties.get(COMPRESSION_CODEC).map(|c| c.trim().to_ascii_lowercase());
    let compression = compression(codec.as_deref().unwrap_or("zstd"), level)?;
    Ok(WriterProperties::builder().set_max_row_group_bytes(Some(row_group_bytes)).set_compression(compression).build())
}

/// The codec named `codec` at `level`.
fn compression(codec: &str, level: Option<i32>) -> Result<Compression, String> {
    let bad_level = |e: parquet::errors::ParquetError| format!("the table property {COMPRESSION_LEVEL}: {e}");
    let no_level = |codec: &str| match level {
        Some(level) => Err(format!("the table property {COMPRESSION_LEVEL} is {level}, but {codec} takes no level")),
        None => Ok(()),
    };
    // gzip's and brotli's levels are unsigned.
    let unsigned = || {
        level
            .map(|l| u32::try_from(l).map_err(|_| format!("the table property {COMPRESSION_LEVEL} is {l}")))
            .transpose()
    };
    Ok(match codec {
        "zstd" => Compression::ZSTD(level.map(ZstdLevel::try_new).transpose().map_err(bad_level)?.unwrap_or_default()),
        "gzip" => {
            Compression::GZIP(unsigned()?.map(GzipLevel::try_new).transpose().map_err(bad_level)?.unwrap_or_default())
        }
        "brotli" => Compression::BROTLI(
            unsigned()?.map(BrotliLevel::try_new).transpose().map_err(bad_level)?.unwrap_or_default(),
        ),
        "snappy" => no_level(codec).map(|()| Compression::SNAPPY)?,
        // What pyarrow and pyiceberg write for `lz4`: the raw block format
        // (Parquet's LZ4 with Hadoop's framing is deprecated).
        "lz4" => no_level(codec).map(|()| Compression::LZ4_RAW)?,
        "uncompressed" | "none" => no_level(codec).map(|()| Compression::UNCOMPRESSED)?,
        other => {
            return Err(format!(
                "the table property {COMPRESSION_CODEC} is `{other}`: expected zstd, gzip, snappy, lz4, brotli \
                 or uncompressed"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_table_without_properties_gets_icebergs_defaults() {
        let written = writer_properties(&HashMap::new()).expect("defaults");
        assert_eq!(written.max_row_group_bytes(), Some(128 * 1024 * 1024));
        assert_eq!(written.compression(&"any".into()), Compression::ZSTD(ZstdLevel::try_new(1).expect("level")));
    }

    #[test]
    fn the_tables_properties_are_taken() {
        let written = writer_properties(&props(&[
            (ROW_GROUP_BYTES, "8388608"),
            (COMPRESSION_CODEC, "GZIP"),
            (COMPRESSION_LEVEL, "9"),
        ]))
        .expect("valid");
        assert_eq!(written.max_row_group_bytes(), Some(8 << 20));
        assert_eq!(written.compression(&"any".into()), Compression::GZIP(GzipLevel::try_new(9).expect("level")));
        let snappy = writer_properties(&props(&[(COMPRESSION_CODEC, "snappy")])).expect("valid");
        assert_eq!(snappy.compression(&"any".into()), Compression::SNAPPY);
    }

    #[test]
    fn a_bad_property_is_named_with_its_value() {
        for (pairs, expected) in [
            (vec![(ROW_GROUP_BYTES, "big")], "write.parquet.row-group-size-bytes is `big`"),
            (vec![(ROW_GROUP_BYTES, "0")], "write.parquet.row-group-size-bytes is `0`"),
            (vec![(COMPRESSION_CODEC, "lzo")], "write.parquet.compression-codec is `lzo`"),
            (vec![(COMPRESSION_LEVEL, "99")], "write.parquet.compression-level"),
            (vec![(COMPRESSION_CODEC, "snappy"), (COMPRESSION_LEVEL, "3")], "snappy takes no level"),
        ] {
            let error = writer_properties(&props(&pairs)).expect_err("invalid");
            assert!(error.contains(expected), "{error} should contain {expected}");
        }
    }
}
