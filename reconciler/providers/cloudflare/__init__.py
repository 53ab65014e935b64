"""Cloudflare Workers AI: everything reconciler knows about this provider."""
