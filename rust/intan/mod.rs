//! Intan RHD2000 file formats: header parsing and block / .dat reading.
