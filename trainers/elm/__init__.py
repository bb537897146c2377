"""ELM (Elastic Architecture Search): the six-block SPOS super-network, PCA growth, CKA head search and the elm_subnet trainer."""
