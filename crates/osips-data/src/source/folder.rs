//! Image folders: `root/<identity>/<image>` (CASIA-WebFace, any ImageFolder tree), and
//! unlabeled trees of images.

use std::path::{Path, PathBuf};

use super::{has_image_extension, BadInput, FaceData, FaceSource};
use crate::DataError;

/// A folder of images. Labeled: every sub-directory of the root is one identity (sorted
/// by name; identity `i` is the `i`-th non-empty one) holding its images. Unlabeled: every
/// image anywhere under the root, no identity.
///
/// The index stores each directory name once and the file names in one string buffer:
/// about `file name length + 8` bytes per image.
#[derive(Debug)]
pub struct FolderSource {
    root: PathBuf,
    labeled: bool,
    /// Directory of each group, relative to the root ("" for the root itself).
    dirs: Vec<String>,
    /// All file names, concatenated.
    names: String,
    /// End of each file name in `names`.
    name_ends: Vec<u32>,
    /// Group (directory) of each image.
    dir_of: Vec<u32>,
    skipped: Vec<BadInput>,
    description: String,
}

fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, DataError> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follow symlinks: a tree of links into another dataset is common.
        let is_dir = std::fs::metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        out.push((name, path, is_dir));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

impl FolderSource {
    /// Indexes `root/<identity>/<image>`. Non-image files, nested directories, files
    /// directly under the root and empty identity folders are skipped and reported.
    pub fn open_labeled(root: &Path) -> Result<FolderSource, DataError> {
        let mut src = FolderSource::empty(root, true);
        let tag = format!("folder {}", root.display());
        for (name, path, is_dir) in sorted_entries(root)? {
            if !is_dir {
                src.skipped.push(BadInput {
                    source: tag.clone(),
                    location: path.display().to_string(),
                    reason: "file directly under the root of a labeled folder (expected \
                             root/<identity>/<image>): ignored"
                        .to_string(),
                });
                continue;
            }
            let before = src.dir_of.len();
            let group = src.dirs.len() as u32;
            for (fname, fpath, sub_is_dir) in sorted_entries(&path)? {
                if sub_is_dir {
                    src.skipped.push(BadInput {
                        source: tag.clone(),
                        location: fpath.display().to_string(),
                        reason: "nested directory inside an identity folder: ignored".into(),
                    });
                } else if has_image_extension(&fpath) {
                    src.push_file(group, &fname)?;
                } else {
                    src.skipped.push(BadInput {
                        source: tag.clone(),
                        location: fpath.display().to_string(),
                        reason: "not an image file (by extension): skipped".into(),
                    });
                }
            }
            if src.dir_of.len() == before {
                src.skipped.push(BadInput {
                    source: tag.clone(),
                    location: path.display().to_string(),
                    reason: "empty identity folder: skipped".into(),
                });
            } else {
                src.dirs.push(name);
            }
        }
        src.finish();
        Ok(src)
    }

    /// Indexes every image under `root`, recursively, with no identity.
    pub fn open_unlabeled(root: &Path) -> Result<FolderSource, DataError> {
        let mut src = FolderSource::empty(root, false);
        let tag = format!("unlabeled folder {}", root.display());
        let mut stack = vec![String::new()];
        while let Some(rel) = stack.pop() {
            let dir = if rel.is_empty() {
                root.to_path_buf()
            } else {
                root.join(&rel)
            };
            let group = src.dirs.len() as u32;
            let mut subdirs = Vec::new();
            let mut any = false;
            for (name, path, is_dir) in sorted_entries(&dir)? {
                let child = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                if is_dir {
                    subdirs.push(child);
                } else if has_image_extension(&path) {
                    src.push_file(group, &name)?;
                    any = true;
                } else {
                    src.skipped.push(BadInput {
                        source: tag.clone(),
                        location: path.display().to_string(),
                        reason: "not an image file (by extension): skipped".into(),
                    });
                }
            }
            if any {
                src.dirs.push(rel);
            }
            // Depth-first in name order.
            stack.extend(subdirs.into_iter().rev());
        }
        src.finish();
        Ok(src)
    }

    fn empty(root: &Path, labeled: bool) -> FolderSource {
        FolderSource {
            root: root.to_path_buf(),
            labeled,
            dirs: Vec::new(),
            names: String::new(),
            name_ends: Vec::new(),
            dir_of: Vec::new(),
            skipped: Vec::new(),
            description: String::new(),
        }
    }

    fn push_file(&mut self, group: u32, name: &str) -> Result<(), DataError> {
        self.names.push_str(name);
        let end = u32::try_from(self.names.len()).map_err(|_| {
            DataError::Config(format!(
                "{}: file names exceed 4 GiB of index",
                self.root.display()
            ))
        })?;
        self.name_ends.push(end);
        self.dir_of.push(group);
        Ok(())
    }

    fn finish(&mut self) {
        self.description = if self.labeled {
            format!(
                "folder {} ({} identities, {} images)",
                self.root.display(),
                self.dirs.len(),
                self.dir_of.len()
            )
        } else {
            format!(
                "unlabeled folder {} ({} images)",
                self.root.display(),
                self.dir_of.len()
            )
        };
    }

    /// The path of image `i`.
    pub fn path(&self, i: usize) -> Option<PathBuf> {
        let group = *self.dir_of.get(i)? as usize;
        let end = *self.name_ends.get(i)? as usize;
        let start = if i == 0 {
            0
        } else {
            *self.name_ends.get(i - 1)? as usize
        };
        let name = self.names.get(start..end)?;
        let dir = self.dirs.get(group)?;
        let mut p = self.root.clone();
        if !dir.is_empty() {
            p.push(dir);
        }
        p.push(name);
        Some(p)
    }
}

impl FaceSource for FolderSource {
    fn len(&self) -> usize {
        self.dir_of.len()
    }

    fn identity(&self, i: usize) -> Option<u32> {
        if self.labeled {
            self.dir_of.get(i).copied()
        } else {
            None
        }
    }

    fn read(&self, i: usize) -> Result<FaceData, DataError> {
        let path = self.path(i).ok_or_else(|| DataError::OutOfRange {
            source_name: self.description.clone(),
            index: i,
            len: self.len(),
        })?;
        std::fs::read(&path)
            .map(FaceData::Encoded)
            .map_err(|e| DataError::io(path, e))
    }

    fn n_identities(&self) -> usize {
        if self.labeled {
            self.dirs.len()
        } else {
            0
        }
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn location(&self, i: usize) -> String {
        self.path(i)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("{}[{i}]", self.root.display()))
    }

    fn identity_name(&self, id: u32) -> Option<String> {
        if self.labeled {
            self.dirs.get(id as usize).cloned()
        } else {
            None
        }
    }

    fn skipped_at_open(&self) -> &[BadInput] {
        &self.skipped
    }
}
