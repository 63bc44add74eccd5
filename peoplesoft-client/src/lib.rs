//! peoplesoft-client
