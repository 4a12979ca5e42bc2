/* The cart page (filled in by the buy area): lines from localStorage, priced by POST /cart/price. */
