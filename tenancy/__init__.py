"""Who is asking and what they may touch: organizations, tenant context, scoped sessions, auth."""
