//! LLM message, tool and stream schemas (placeholder: being filled in).
