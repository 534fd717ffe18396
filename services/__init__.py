"""Third-party servers the project starts for you (beside Temporal's dev server): the Tryton ERP."""
