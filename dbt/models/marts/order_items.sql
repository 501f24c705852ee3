with

order_items as (

    select * from {{ ref('stg_order_items') }}

),

orders as (

    select * from {{ ref('stg_orders') }}

),

products as (

    select * from {{ ref('stg_products') }}

),

supplies as (

    select * from {{ ref('stg_supplies') }}

),

order_supplies_summary as (

    select
        product_id,

        sum(supply_cost_cents) as supply_cost_cents

    from supplies

    group by 1

),

joined as (

    select
        order_items.*,

        orders.ordered_at,

        products.product_name,
        products.product_price_cents,
        products.product_price,
        products.is_food_item,
        products.is_drink_item,

        -- money is summed in integer cents (exact everywhere), then shown in dollars;
        -- a product that uses no supply costs nothing to supply
        coalesce(order_supplies_summary.supply_cost_cents, 0) as supply_cost_cents,
        {{ cents_to_dollars('coalesce(order_supplies_summary.supply_cost_cents, 0)') }} as supply_cost

    from order_items

    left join orders on order_items.order_id = orders.order_id

    left join products on order_items.product_id = products.product_id

    left join order_supplies_summary
        on order_items.product_id = order_supplies_summary.product_id

)

select * from joined
