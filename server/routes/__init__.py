"""HTTP routes. Each module is an APIRouter; ``server.app`` mounts them."""
