//! Drawings as functions of (data, DrawingBackend).
