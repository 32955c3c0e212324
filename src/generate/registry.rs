//! The model registry on disk: `<dir>/models/<topology>/v<N>.json` for every
//! version ever fitted, and `deployed` naming the version in use.
//!
//! Writes go to a temporary file then rename, so a crash never leaves a
//! half-written model or a pointer to one; both are owner-only
//! ([`crate::owner_only`]): a model record is fitted on real rows. On restart the engine loads the
//! deployed model, so drift is judged against the same reference as before.

use std::path::{Path, PathBuf};

use super::ModelRecord;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("model registry {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model registry {path}: not a valid model record: {message}")]
    Corrupt { path: PathBuf, message: String },
}

/// Versions of one topology's models.
#[derive(Debug, Clone)]
pub struct ModelRegistry {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl ModelRegistry {
    pub fn open(audit_dir: &Path, topology: &str) -> Result<Self, RegistryError> {
        let dir = audit_dir.join("models").join(topology);
        crate::owner_only::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(ModelRegistry { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, version: u64) -> PathBuf {
        self.dir.join(format!("v{version}.json"))
    }

    /// Highest version present (0 when none).
    pub fn latest_version(&self) -> Result<u64, RegistryError> {
        let mut max = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(v) = name.strip_prefix('v').and_then(|s| s.strip_suffix(".json"))
                && let Ok(v) = v.parse::<u64>()
            {
                max = max.max(v);
            }
        }
        Ok(max)
    }

    pub fn save(&self, record: &ModelRecord) -> Result<PathBuf, RegistryError> {
        let path = self.path(record.version);
        let bytes = serde_json::to_vec(record).map_err(|e| RegistryError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        crate::owner_only::write_atomic(&path, &bytes).map_err(io(&path))?;
        Ok(path)
    }

    pub fn load(&self, version: u64) -> Result<ModelRecord, RegistryError> {
        let path = self.path(version);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Corrupt {
            path,
            message: e.to_string(),
        })
    }

    /// Points `deployed` at `version`.
    pub fn deploy(&self, version: u64) -> Result<(), RegistryError> {
        let path = self.dir.join("deployed");
        crate::owner_only::write_atomic(&path, version.to_string().as_bytes()).map_err(io(&path))
    }

    /// The deployed model, if any.
    pub fn deployed(&self) -> Result<Option<ModelRecord>, RegistryError> {
        let path = self.dir.join("deployed");
        match std::fs::read_to_string(&path) {
            Ok(s) => {
                let v = s
                    .trim()
                    .parse::<u64>()
                    .map_err(|e| RegistryError::Corrupt {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                self.load(v).map(Some)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::drift::ReferenceProfile;
    use crate::generate::{FittedOn, GeneratorKind, GeneratorSettings, cart, copula, fit_model};
    use crate::owner_only::tests::mode;

    /// A model record is fitted on real rows: the registry's directories,
    /// every version and the `deployed` pointer are owner-only, and a
    /// pointer left world-readable (an older version) is narrowed when it
    /// is rewritten.
    #[test]
    fn models_and_the_deployed_pointer_are_owner_only() {
        let table = cart::tests::clinical(200, 3);
        let (copula_config, cart_config) =
            (copula::CopulaConfig::default(), cart::CartConfig::default());
        let settings = GeneratorSettings {
            kind: GeneratorKind::GaussianCopula,
            copula: &copula_config,
            cart: &cart_config,
            entities: None,
            gate: None,
            stratify: None,
            privbayes: None,
        };
        let fitted_on = FittedOn {
            window_start_ms: 0,
            window_end_ms: 0,
            source_offsets: Vec::new(),
            train_rows: table.n_rows(),
            holdout_rows: 0,
        };
        let record = fit_model(
            "t",
            1,
            &table,
            settings,
            9,
            fitted_on,
            ReferenceProfile::build(&table),
        )
        .unwrap();
        let audit = tempfile::tempdir().unwrap();
        let audit_dir = audit.path().join("audit");
        let registry = ModelRegistry::open(&audit_dir, "t").unwrap();
        assert_eq!(mode(&audit_dir), 0o700);
        assert_eq!(mode(&audit_dir.join("models")), 0o700);
        assert_eq!(mode(registry.dir()), 0o700);
        let saved = registry.save(&record).unwrap();
        assert_eq!(mode(&saved), 0o600);
        registry.deploy(1).unwrap();
        let pointer = registry.dir().join("deployed");
        assert_eq!(mode(&pointer), 0o600);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pointer, std::fs::Permissions::from_mode(0o644)).unwrap();
        registry.deploy(1).unwrap();
        assert_eq!(mode(&pointer), 0o600, "a rewritten pointer is narrowed");
        assert_eq!(registry.deployed().unwrap().unwrap().sha256, record.sha256);
    }
}
