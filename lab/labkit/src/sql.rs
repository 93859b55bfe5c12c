//! The schema of lab/README.md in three SQL dialects, and fast multi-row INSERTs in one transaction.

use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Mysql,
    Pgsql,
}

#[derive(Clone, Debug, PartialEq)]
pub enum V {
    Null,
    I(i64),
    S(String),
}

impl From<i64> for V {
    fn from(v: i64) -> V {
        V::I(v)
    }
}
impl From<&str> for V {
    fn from(v: &str) -> V {
        V::S(v.to_string())
    }
}
impl From<String> for V {
    fn from(v: String) -> V {
        V::S(v)
    }
}
impl From<Option<String>> for V {
    fn from(v: Option<String>) -> V {
        v.map(V::S).unwrap_or(V::Null)
    }
}

/// Column types, mapped per dialect.
#[derive(Clone, Copy)]
enum T {
    /// Auto-increment primary key (int).
    Serial,
    /// Auto-increment primary key (bigint).
    BigSerial,
    Int,
    SmallInt,
    BigInt,
    Varchar(u32),
    Text,
    Timestamp,
}

struct Col {
    name: &'static str,
    ty: T,
    /// NOT NULL with this default ("" = NOT NULL without default; None = nullable).
    not_null: Option<&'static str>,
}

const fn c(name: &'static str, ty: T, not_null: Option<&'static str>) -> Col {
    Col { name, ty, not_null }
}

struct Table {
    name: &'static str,
    cols: &'static [Col],
    /// Primary key columns when not a serial column.
    pk: &'static [&'static str],
    /// (index name, unique, columns)
    indexes: &'static [(&'static str, bool, &'static [&'static str])],
}

use T::*;

const TABLES: &[Table] = &[
    Table {
        name: "storages",
        cols: &[
            c("numeric_id", Serial, Some("")),
            c("id", Varchar(64), None),
            c("available", Int, Some("1")),
            c("last_checked", Int, None),
        ],
        pk: &[],
        indexes: &[("storages_id_index", true, &["id"])],
    },
    Table {
        name: "mimetypes",
        cols: &[
            c("id", Serial, Some("")),
            c("mimetype", Varchar(255), Some("''")),
        ],
        pk: &[],
        indexes: &[("mimetype_id_index", true, &["mimetype"])],
    },
    Table {
        name: "filecache",
        cols: &[
            c("fileid", BigSerial, Some("")),
            c("storage", Int, Some("0")),
            c("path", Varchar(4000), None),
            c("path_hash", Varchar(32), Some("''")),
            c("parent", BigInt, Some("0")),
            c("name", Varchar(250), None),
            c("mimetype", Int, Some("0")),
            c("mimepart", Int, Some("0")),
            c("size", BigInt, Some("0")),
            c("mtime", BigInt, Some("0")),
            c("storage_mtime", BigInt, Some("0")),
            c("encrypted", Int, Some("0")),
            c("unencrypted_size", BigInt, Some("0")),
            c("etag", Varchar(40), None),
            c("permissions", Int, Some("0")),
            c("checksum", Varchar(255), None),
        ],
        pk: &[],
        indexes: &[
            ("fs_storage_path_hash", true, &["storage", "path_hash"]),
            ("fs_parent_name_hash", false, &["parent", "name"]),
            ("fs_storage_mimetype", false, &["storage", "mimetype"]),
        ],
    },
    Table {
        name: "mounts",
        cols: &[
            c("id", Serial, Some("")),
            c("storage_id", Int, Some("")),
            c("root_id", BigInt, Some("")),
            c("user_id", Varchar(64), Some("")),
            c("mount_point", Varchar(4000), Some("")),
        ],
        pk: &[],
        indexes: &[
            ("mounts_user_index", false, &["user_id"]),
            ("mounts_root_index", false, &["root_id"]),
        ],
    },
    Table {
        name: "accounts",
        cols: &[
            c("id", Serial, Some("")),
            c("email", Varchar(255), None),
            c("user_id", Varchar(255), Some("")),
            c("lower_user_id", Varchar(255), Some("")),
            c("display_name", Varchar(255), None),
            c("quota", Varchar(32), None),
            c("last_login", Int, Some("0")),
            c("backend", Varchar(64), Some("")),
            c("home", Varchar(1024), Some("")),
            c("state", SmallInt, Some("0")),
        ],
        pk: &[],
        indexes: &[
            ("UNIQ_907AA303A76ED395", true, &["user_id"]),
            ("lower_user_id_index", false, &["lower_user_id"]),
        ],
    },
    Table {
        name: "users",
        cols: &[
            c("uid", Varchar(64), Some("''")),
            c("displayname", Varchar(64), None),
            c("password", Varchar(255), Some("''")),
            c("uid_lower", Varchar(64), Some("''")),
        ],
        pk: &["uid"],
        indexes: &[("user_uid_lower", false, &["uid_lower"])],
    },
    Table {
        name: "appconfig",
        cols: &[
            c("appid", Varchar(32), Some("''")),
            c("configkey", Varchar(64), Some("''")),
            c("configvalue", Text, None),
        ],
        pk: &["appid", "configkey"],
        indexes: &[("appconfig_config_key_index", false, &["configkey"])],
    },
    Table {
        name: "jobs",
        cols: &[
            c("id", Serial, Some("")),
            c("class", Varchar(255), Some("''")),
            c("argument", Varchar(4000), Some("''")),
            c("last_run", Int, Some("0")),
            c("last_checked", Int, Some("0")),
            c("reserved_at", Int, Some("0")),
            c("execution_duration", Int, Some("0")),
        ],
        pk: &[],
        indexes: &[("job_class_index", false, &["class"])],
    },
    Table {
        name: "share",
        cols: &[
            c("id", Serial, Some("")),
            c("share_type", SmallInt, Some("0")),
            c("share_with", Varchar(255), None),
            c("uid_owner", Varchar(64), Some("''")),
            c("uid_initiator", Varchar(64), None),
            c("parent", Int, None),
            c("item_type", Varchar(64), Some("''")),
            c("item_source", Varchar(255), None),
            c("item_target", Varchar(255), None),
            c("file_source", BigInt, None),
            c("file_target", Varchar(512), None),
            c("permissions", SmallInt, Some("0")),
            c("stime", BigInt, Some("0")),
            c("accepted", SmallInt, Some("0")),
            c("expiration", Timestamp, None),
            c("token", Varchar(32), None),
            c("mail_send", SmallInt, Some("0")),
            c("share_name", Varchar(64), None),
        ],
        pk: &[],
        indexes: &[
            ("item_share_type_index", false, &["item_type", "share_type"]),
            ("token_index", false, &["token"]),
        ],
    },
    Table {
        name: "file_locks",
        cols: &[
            c("id", BigSerial, Some("")),
            c("lock", Int, Some("0")),
            c("key", Varchar(64), Some("")),
            c("ttl", Int, Some("-1")),
        ],
        pk: &[],
        indexes: &[
            ("lock_key_index", true, &["key"]),
            ("lock_ttl_index", false, &["ttl"]),
        ],
    },
    Table {
        name: "authtoken",
        cols: &[
            c("id", Serial, Some("")),
            c("uid", Varchar(64), Some("''")),
            c("login_name", Varchar(255), Some("''")),
            c("password", Text, None),
            c("name", Text, Some("")),
            c("token", Varchar(200), Some("''")),
            c("type", SmallInt, Some("0")),
            c("last_activity", Int, Some("0")),
            c("last_check", Int, Some("0")),
            c("remember", SmallInt, Some("0")),
        ],
        pk: &[],
        indexes: &[
            ("authtoken_token_index", true, &["token"]),
            ("authtoken_last_activity_index", false, &["last_activity"]),
        ],
    },
    Table {
        name: "external_mounts",
        cols: &[
            c("mount_id", Serial, Some("")),
            c("mount_point", Varchar(128), Some("")),
            c("storage_backend", Varchar(64), Some("")),
            c("auth_backend", Varchar(64), Some("")),
            c("priority", Int, Some("100")),
            c("type", Int, Some("")),
        ],
        pk: &[],
        indexes: &[],
    },
    Table {
        name: "external_config",
        cols: &[
            c("config_id", Serial, Some("")),
            c("mount_id", BigInt, Some("")),
            c("key", Varchar(64), Some("")),
            c("value", Varchar(4096), Some("")),
        ],
        pk: &[],
        indexes: &[("config_mount_key", true, &["mount_id", "key"])],
    },
];

impl Dialect {
    pub fn ident(self, name: &str) -> String {
        match self {
            Dialect::Mysql => format!("`{name}`"),
            _ => format!("\"{name}\""),
        }
    }

    /// A string literal.
    pub fn string(self, s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('\'');
        for ch in s.chars() {
            match ch {
                '\'' => out.push_str("''"),
                // MariaDB treats backslash as an escape character in literals (by default).
                '\\' if self == Dialect::Mysql => out.push_str("\\\\"),
                '\0' => panic!("NUL in an SQL string"),
                c => out.push(c),
            }
        }
        out.push('\'');
        out
    }

    fn value(self, v: &V, out: &mut String) {
        match v {
            V::Null => out.push_str("NULL"),
            V::I(i) => {
                let _ = write!(out, "{i}");
            }
            V::S(s) => out.push_str(&self.string(s)),
        }
    }

    fn col_type(self, t: T) -> String {
        match (self, t) {
            (Dialect::Sqlite, Serial | BigSerial) => "INTEGER PRIMARY KEY AUTOINCREMENT".into(),
            (Dialect::Sqlite, Int | SmallInt | BigInt) => "INTEGER".into(),
            (Dialect::Sqlite, Varchar(n)) => format!("VARCHAR({n})"),
            (Dialect::Sqlite, Text) => "CLOB".into(),
            (Dialect::Sqlite, Timestamp) => "DATETIME".into(),
            (Dialect::Mysql, Serial) => "INT AUTO_INCREMENT".into(),
            (Dialect::Mysql, BigSerial) => "BIGINT AUTO_INCREMENT".into(),
            (Dialect::Mysql, Int) => "INT".into(),
            (Dialect::Mysql, SmallInt) => "SMALLINT".into(),
            (Dialect::Mysql, BigInt) => "BIGINT".into(),
            (Dialect::Mysql, Varchar(n)) => format!("VARCHAR({n})"),
            (Dialect::Mysql, Text) => "LONGTEXT".into(),
            (Dialect::Mysql, Timestamp) => "DATETIME".into(),
            (Dialect::Pgsql, Serial) => "SERIAL".into(),
            (Dialect::Pgsql, BigSerial) => "BIGSERIAL".into(),
            (Dialect::Pgsql, Int) => "INT".into(),
            (Dialect::Pgsql, SmallInt) => "SMALLINT".into(),
            (Dialect::Pgsql, BigInt) => "BIGINT".into(),
            (Dialect::Pgsql, Varchar(n)) => format!("VARCHAR({n})"),
            (Dialect::Pgsql, Text) => "TEXT".into(),
            (Dialect::Pgsql, Timestamp) => "TIMESTAMP(0) WITHOUT TIME ZONE".into(),
        }
    }

    /// `CREATE TABLE` and `CREATE INDEX` statements for every table.
    pub fn schema(self, prefix: &str, with_accounts: bool) -> String {
        let mut out = String::new();
        for t in TABLES
            .iter()
            .filter(|t| with_accounts || t.name != "accounts")
        {
            let table = format!("{prefix}{}", t.name);
            let mut lines: Vec<String> = vec![];
            let mut serial = None;
            for col in t.cols {
                let mut l = format!("{} {}", self.ident(col.name), self.col_type(col.ty));
                if matches!(col.ty, Serial | BigSerial) {
                    serial = Some(col.name);
                    if self != Dialect::Sqlite {
                        l.push_str(" NOT NULL");
                    }
                } else {
                    match col.not_null {
                        Some("") => l.push_str(" NOT NULL"),
                        Some(d) => {
                            let _ = write!(l, " DEFAULT {d} NOT NULL");
                        }
                        None => l.push_str(" DEFAULT NULL"),
                    }
                }
                lines.push(l);
            }
            if self != Dialect::Sqlite {
                if let Some(s) = serial {
                    lines.push(format!("PRIMARY KEY({})", self.ident(s)));
                }
            }
            if !t.pk.is_empty() {
                let cols: Vec<String> = t.pk.iter().map(|c| self.ident(c)).collect();
                lines.push(format!("PRIMARY KEY({})", cols.join(", ")));
            }
            let _ = write!(
                out,
                "CREATE TABLE {} (\n  {}\n)",
                self.ident(&table),
                lines.join(",\n  ")
            );
            if self == Dialect::Mysql {
                out.push_str(
                    " DEFAULT CHARACTER SET utf8mb4 COLLATE `utf8mb4_bin` ENGINE = InnoDB",
                );
            }
            out.push_str(";\n");
            for (name, unique, cols) in t.indexes {
                let cols: Vec<String> = cols.iter().map(|c| self.ident(c)).collect();
                // Index names are per schema in SQLite and PostgreSQL: prefix them like ownCloud does.
                let iname = if self == Dialect::Mysql {
                    name.to_string()
                } else {
                    format!("{prefix}{name}")
                };
                let _ = writeln!(
                    out,
                    "CREATE {}INDEX {} ON {} ({});",
                    if *unique { "UNIQUE " } else { "" },
                    self.ident(&iname),
                    self.ident(&table),
                    cols.join(", ")
                );
            }
        }
        out
    }

    pub fn begin(self) -> &'static str {
        match self {
            Dialect::Sqlite => "PRAGMA foreign_keys = OFF;\nBEGIN TRANSACTION;\n",
            Dialect::Mysql => "SET NAMES utf8mb4;\nSET autocommit = 0;\nSET unique_checks = 0;\nSET foreign_key_checks = 0;\nSTART TRANSACTION;\n",
            Dialect::Pgsql => "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\nBEGIN;\n",
        }
    }

    /// End of the load: commit, and for PostgreSQL move the sequences past the explicit ids.
    pub fn end(self, prefix: &str, with_accounts: bool) -> String {
        let mut out = String::new();
        if self == Dialect::Pgsql {
            for t in TABLES
                .iter()
                .filter(|t| with_accounts || t.name != "accounts")
            {
                if let Some(col) = t.cols.iter().find(|c| matches!(c.ty, Serial | BigSerial)) {
                    let table = format!("{prefix}{}", t.name);
                    let _ = writeln!(
                        out,
                        "SELECT setval(pg_get_serial_sequence('{table}', '{col}'), COALESCE(MAX({c}), 0) + 1, false) FROM {t};",
                        col = col.name,
                        c = self.ident(col.name),
                        t = self.ident(&table)
                    );
                }
            }
        }
        out.push_str("COMMIT;\n");
        if self == Dialect::Mysql {
            out.push_str("SET unique_checks = 1;\nSET foreign_key_checks = 1;\n");
        }
        out
    }
}

/// Rows for one table, written as multi-row INSERTs of at most `BATCH` rows.
pub struct Inserts<'a> {
    pub dialect: Dialect,
    pub table: String,
    pub cols: &'a [&'a str],
    rows: usize,
    pub out: &'a mut String,
}

const BATCH: usize = 500;

impl<'a> Inserts<'a> {
    pub fn new(
        dialect: Dialect,
        table: String,
        cols: &'a [&'a str],
        out: &'a mut String,
    ) -> Inserts<'a> {
        Inserts {
            dialect,
            table,
            cols,
            rows: 0,
            out,
        }
    }

    pub fn row(&mut self, values: &[V]) {
        assert_eq!(values.len(), self.cols.len(), "row for {}", self.table);
        if self.rows.is_multiple_of(BATCH) {
            if self.rows > 0 {
                self.out.push_str(";\n");
            }
            let cols: Vec<String> = self.cols.iter().map(|c| self.dialect.ident(c)).collect();
            let _ = write!(
                self.out,
                "INSERT INTO {} ({}) VALUES\n(",
                self.dialect.ident(&self.table),
                cols.join(", ")
            );
        } else {
            self.out.push_str(",\n(");
        }
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.dialect.value(v, self.out);
        }
        self.out.push(')');
        self.rows += 1;
    }

    pub fn finish(self) {
        if self.rows > 0 {
            self.out.push_str(";\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_per_dialect() {
        assert_eq!(
            Dialect::Mysql.string(r"OC\Log\Rotate it's"),
            r"'OC\\Log\\Rotate it''s'"
        );
        assert_eq!(
            Dialect::Pgsql.string(r"OC\Log\Rotate it's"),
            r"'OC\Log\Rotate it''s'"
        );
        assert_eq!(Dialect::Sqlite.string("é'"), "'é'''");
    }

    #[test]
    fn schema_quotes_reserved_names() {
        let s = Dialect::Mysql.schema("oc_", true);
        assert!(s.contains("`lock` INT DEFAULT 0 NOT NULL"));
        assert!(s.contains("`key` VARCHAR(64) NOT NULL"));
        let s = Dialect::Pgsql.schema("oc_", false);
        assert!(s.contains("\"fileid\" BIGSERIAL NOT NULL"));
        assert!(!s.contains("oc_accounts"));
        let s = Dialect::Sqlite.schema("oc_", true);
        assert!(s.contains("\"numeric_id\" INTEGER PRIMARY KEY AUTOINCREMENT"));
    }

    #[test]
    fn batches() {
        let mut out = String::new();
        let cols = ["a", "b"];
        let mut ins = Inserts::new(Dialect::Sqlite, "t".into(), &cols, &mut out);
        for i in 0..(BATCH as i64 + 1) {
            ins.row(&[V::I(i), V::Null]);
        }
        ins.finish();
        assert_eq!(out.matches("INSERT INTO").count(), 2);
        assert!(out.ends_with("(500, NULL);\n"));
    }
}
